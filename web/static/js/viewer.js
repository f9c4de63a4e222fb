// The viewer page (/live/{id}): the player, what state the broadcast is
// in, the shop and its products, and the share button.
//
// Phase 2 mounts the live channel here: chat (#chat-slot), the pinned offer
// with its countdown and buy button (#offer-slot), checkout and moderator
// tools, each as its own module started from this file.

import { initLangSwitch, t, formatTime, formatDate, yuan } from './i18n.js';
import { $, el } from './dom.js';
import { get } from './api.js';
import { shareLink } from './share.js';
import { WhepPlayer } from './whep.js';

initLangSwitch();

const root = $('viewer');
const broadcastId = root.dataset.broadcast;
const shopId = root.dataset.shop;
const scheduledAt = root.dataset.scheduledAt;
const watchUrl = root.dataset.watchUrl;

const stage = $('stage');
const video = $('player');
const unmute = $('unmute');

let state = root.dataset.state; // scheduled | live | ended
let playerStatus = 'idle';
let needsTap = false; // the browser refused to autoplay even muted

const player = new WhepPlayer({ endpoint: `/api/v1/broadcasts/${broadcastId}/whep`, video });

function cover(title, text, hint, spinning) {
  $('cover-title').textContent = title;
  const time = $('cover-time');
  time.textContent = text;
  $('cover-hint').textContent = hint || '';
  $('stage-cover').classList.toggle('spinning', Boolean(spinning));
}

function note(text) {
  const n = $('net-note');
  n.textContent = text || '';
  n.hidden = !text;
}

/** Puts the broadcast state and the player's status into words. */
function render() {
  const chip = $('state-chip');
  chip.dataset.state = state;
  $('state-word').textContent = t(`state.${state}`);
  const playing = state !== 'ended' && ['playing', 'audio-only', 'stalled'].includes(playerStatus);
  stage.dataset.status = state === 'ended' ? 'ended' : playing ? 'playing' : 'waiting';
  $('live-badge').hidden = !playing;
  let netNote = '';
  if (playing && playerStatus === 'audio-only') netNote = t('viewer.audio_only');
  else if (playing && playerStatus === 'stalled') netNote = t('viewer.slow');
  note(netNote);
  unmute.hidden = !(playing && video.muted) && !needsTap;
  unmute.querySelector('span').textContent = needsTap ? t('viewer.tap_play') : t('viewer.unmute');
  if (playing) return;
  if (state === 'ended') {
    cover(t('viewer.ended'), t('viewer.ended_text'), '', false);
    renderNext();
  } else if (playerStatus === 'fatal') {
    cover(t('viewer.codec'), '', '', false);
  } else if (playerStatus === 'busy') {
    cover(t('viewer.full'), '', '', true);
  } else if (playerStatus === 'reconnecting') {
    cover(t('viewer.reconnecting'), '', '', true);
  } else if (state === 'live' && playerStatus === 'waiting') {
    cover(t('viewer.waiting_farmer'), '', t('viewer.keep_checking'), true);
  } else if (state === 'live') {
    cover(t('viewer.connecting'), '', '', true);
  } else {
    const when = scheduledAt ? t('viewer.starts_at', { time: formatTime(scheduledAt) }) : t('viewer.starts_soon');
    cover(t('viewer.not_live'), when, t('viewer.keep_checking'), false);
  }
}

player.addEventListener('status', (e) => {
  const before = playerStatus;
  playerStatus = e.detail.status;
  const lost = ['waiting', 'reconnecting', 'stalled'].includes(playerStatus);
  if (lost && playerStatus !== before) refreshSoon(Math.max(300, 3000 - (Date.now() - lastRefresh)));
  if (playerStatus === 'playing' && state !== 'live') state = 'live';
  render();
});
player.addEventListener('needs-tap', () => { needsTap = true; render(); });

unmute.addEventListener('click', () => {
  video.muted = false;
  needsTap = false;
  const p = video.play();
  if (p && p.catch) p.catch(() => { needsTap = true; render(); });
  render();
});
video.addEventListener('volumechange', render);
// The stage takes the shape of the farmer's picture (phone upright or
// sideways), so nothing is cropped and little is letterboxed.
function fitStage() {
  if (!video.videoWidth) return;
  stage.classList.toggle('portrait', video.videoHeight > video.videoWidth);
  stage.classList.toggle('landscape', video.videoWidth >= video.videoHeight * 1.5);
}
video.addEventListener('loadedmetadata', fitStage);
video.addEventListener('resize', fitStage);

// The broadcast's state, from the API. The player only runs while the
// broadcast is live, so a page left open on a scheduled broadcast costs the
// server one small GET every few seconds, not a WebRTC offer. When the
// player loses the farmer, the state is checked at once (ended, or only
// signal trouble?). Phase 2's live channel pushes state changes instead.
const openedAt = Date.now();
let stateTimer = 0;
let lastRefresh = 0;
function refreshSoon(ms) {
  clearTimeout(stateTimer);
  stateTimer = setTimeout(refreshState, ms);
}

function nextRefreshMs() {
  if (state === 'live') return 15000;
  return Date.now() - openedAt < 180000 ? 3000 : 10000;
}

function follow() {
  if (state === 'live') {
    player.start();
  } else if (state === 'ended') {
    player.stop();
    video.pause();
    video.srcObject = null;
    if (!next) findNext();
  }
}

async function refreshState() {
  lastRefresh = Date.now();
  try {
    const b = await get(`/broadcasts/${broadcastId}`);
    state = b.state;
    follow();
    render();
  } catch (_) { /* offline for a moment: try again later */ }
  if (state !== 'ended') refreshSoon(nextRefreshMs());
}

// After the end, point to the shop's live or next broadcast, if any.
let next = null;
async function findNext() {
  try {
    const all = await get(`/shops/${shopId}/broadcasts`);
    const others = all.filter((b) => b.id !== broadcastId);
    const upcoming = others
      .filter((b) => b.state === 'scheduled')
      .sort((a, b) => String(a.scheduled_at || '9').localeCompare(String(b.scheduled_at || '9')));
    next = others.find((b) => b.state === 'live') || upcoming[0] || null;
  } catch (_) { next = null; }
  renderNext();
}

function renderNext() {
  const link = $('cover-next');
  link.hidden = !(state === 'ended' && next);
  if (link.hidden) return;
  link.href = `/live/${encodeURIComponent(next.id)}`;
  link.textContent = next.state === 'live'
    ? t('viewer.next_live')
    : next.scheduled_at ? t('viewer.next_at', { time: formatTime(next.scheduled_at) }) : next.title;
}

async function loadProducts() {
  try {
    const products = await get(`/shops/${shopId}/products`);
    const list = $('product-list');
    list.replaceChildren(...products.map((p) => el('li', { class: 'product' },
      el('div', { class: 'product-main' },
        el('p', { class: 'product-title', text: p.title }),
        p.description ? el('p', { class: 'product-desc', text: p.description }) : null,
        el('p', { class: 'product-meta' },
          p.ships_on ? el('span', { class: 'tag tag-presale', text: t('viewer.presale', { date: formatDate(p.ships_on) }) }) : null,
          el('span', { class: p.stock > 0 ? 'tag' : 'tag tag-out', text: p.stock > 0 ? t('viewer.stock', { n: p.stock }) : t('viewer.soldout') }))),
      el('p', { class: 'product-price' }, el('strong', { text: yuan(p.price_fen) }), el('span', { class: 'per', text: `/${p.unit}` })))));
    $('products').hidden = products.length === 0;
  } catch (_) { /* the page works without them */ }
}

$('share').addEventListener('click', () => {
  const title = $('broadcast-title').textContent;
  const shop = $('shop-name').textContent;
  shareLink({ url: watchUrl, title, text: t('share.text', { shop, title }) });
});

document.addEventListener('langchange', () => { render(); loadProducts(); });

render();
loadProducts();
follow();
if (state !== 'ended') refreshSoon(nextRefreshMs());
