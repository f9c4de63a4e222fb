// The viewer page (/live/{id}): the player, what state the broadcast is
// in, the shop and its products, the share button, and the live channel:
// chat (#chat-slot, with moderator tools for the owner and moderators), the
// pinned offers with their buy button (#offer-slot), checkout.
//
// The broadcast's state (scheduled, live, ended) and the viewer count come
// over the live channel. Only while the channel cannot connect (a network
// that blocks websockets) does the page fall back to asking the API.

import { initLangSwitch, t, formatTime, formatDate, yuan } from './i18n.js';
import { $, el, icon } from './dom.js';
import { get } from './api.js';
import { shareLink } from './share.js';
import { smallPhoto } from './photo.js';
import { WhepPlayer } from './whep.js';
import { LiveChannel } from './live/channel.js';
import { ChatPanel } from './live/chat.js';
import { ModTools } from './live/moderation.js';
import { OfferCards } from './live/offer.js';
import { Checkout } from './live/checkout.js';

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
    renderReplay();
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
  playerStatus = e.detail.status;
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

// The broadcast's state. The player only runs while the broadcast is live,
// so a page left open on a scheduled broadcast costs the server nothing
// but its share of the live channel.
function setState(next) {
  if (!next || next === state) return;
  state = next;
  follow();
  render();
  showViewers();
}

function follow() {
  if (state === 'live') {
    player.start();
    player.poke();
  } else if (state === 'ended') {
    player.stop();
    video.pause();
    video.srcObject = null;
    if (!next) findNext();
  }
}

// Fallback for when the live channel cannot connect at all: ask the API
// every so often, as the page did before the channel existed.
let fallbackTimer = 0;
function fallback(on) {
  clearTimeout(fallbackTimer);
  if (!on || state === 'ended') return;
  fallbackTimer = setTimeout(async () => {
    try {
      setState((await get(`/broadcasts/${broadcastId}`)).state);
    } catch (_) { /* offline: the next try will tell */ }
    fallback(channel.status !== 'open');
  }, state === 'live' ? 15000 : 5000);
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

// An ended broadcast that was recorded can be watched again: asked once.
let replay = null;
async function renderReplay() {
  if (replay === null) {
    replay = get(`/broadcasts/${encodeURIComponent(broadcastId)}/replay`)
      .then((r) => Array.isArray(r.segments) && r.segments.length > 0)
      .catch(() => false);
  }
  const link = $('cover-replay');
  const recorded = await replay;
  link.hidden = !(state === 'ended' && recorded);
  if (link.hidden) return;
  link.href = `/replay/${encodeURIComponent(broadcastId)}`;
  link.textContent = t('viewer.watch_replay');
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

// The shop's products: the list under the room, and what the offer cards
// show beside the live price (the product's photo and list price).
let products = [];
let offerProducts = new Map(); // offer id -> product id

function productPhoto(p, cls) {
  return p.photo
    ? el('img', { class: cls, src: smallPhoto(p.photo), alt: '', loading: 'lazy', decoding: 'async' })
    : el('span', { class: cls }, icon('field'));
}

function renderProducts() {
  const list = $('product-list');
  list.replaceChildren(...products.map((p) => el('li', { class: 'product' },
    productPhoto(p, 'product-photo'),
    el('div', { class: 'product-main' },
        el('p', { class: 'product-title', text: p.title }),
        p.description ? el('p', { class: 'product-desc', text: p.description }) : null,
        el('p', { class: 'product-meta' },
          p.ships_on ? el('span', { class: 'tag tag-presale', text: t('viewer.presale', { date: formatDate(p.ships_on) }) }) : null,
        el('span', { class: p.stock > 0 ? 'tag' : 'tag tag-out', text: p.stock > 0 ? t('viewer.stock', { n: p.stock }) : t('viewer.soldout') }))),
    el('p', { class: 'product-price' }, el('strong', { text: yuan(p.price_fen) }), el('span', { class: 'per', text: `/${p.unit}` })))));
  $('products').hidden = products.length === 0;
  $('to-products').hidden = products.length === 0;
}

/** What each pinned offer's card shows of its product. */
function productOfOffer(offerId) {
  const id = offerProducts.get(offerId);
  return id ? products.find((p) => p.id === id) || null : null;
}

async function loadProducts() {
  try {
    products = await get(`/shops/${shopId}/products`);
    renderProducts();
    cards.refreshProducts();
  } catch (_) { /* the page works without them */ }
}

/** The shop's photo, as the room's avatar and on the shop card. */
async function loadShop() {
  try {
    const shop = await get(`/shops/${shopId}`);
    if (!shop.photo) return;
    $('shop-avatar').replaceChildren(el('img', { src: smallPhoto(shop.photo), alt: '' }));
    const photo = $('shop-photo');
    photo.src = smallPhoto(shop.photo);
    photo.hidden = false;
  } catch (_) { /* the field icon stays */ }
}

/** Learns which product each of this broadcast's offers sells. */
async function loadOffers() {
  try {
    const offers = await get(`/broadcasts/${broadcastId}/offers`);
    offerProducts = new Map(offers.map((o) => [o.id, o.product_id]));
    cards.refreshProducts();
  } catch (_) { /* cards show without photo and list price */ }
}

$('share').addEventListener('click', () => {
  const title = $('broadcast-title').textContent;
  const shop = $('shop-name').textContent;
  shareLink({ url: watchUrl, title, text: t('share.text', { shop, title }) });
});

// ── the live channel ──────────────────────────────────────────────────
const channel = new LiveChannel(broadcastId);

// "X 人在看" only while someone is watching a live broadcast: "0 人在看"
// or a count on an ended broadcast says nothing useful.
function showViewers(count) {
  if (typeof count === 'number') viewerCount = count;
  const shown = state !== 'ended' && viewerCount > 0;
  $('viewer-chip').hidden = !shown;
  if (shown) $('viewer-count').textContent = t('chat.viewers', { n: viewerCount.toLocaleString() });
}
let viewerCount = null;

channel.on('snapshot', (m) => { setState(m.state.broadcast_state); showViewers(m.state.viewers.count); });
channel.on('room_state', (m) => { setState(m.state.broadcast_state); showViewers(m.state.viewers.count); });
channel.on('broadcast_state', (m) => setState(m.state));
channel.on('viewers', (m) => showViewers(m.count));
channel.on('status', ({ status }) => fallback(status !== 'open' && status !== 'stopped'));

// The headline shows the viewer count already.
const chat = new ChatPanel($('chat-slot'), channel, { viewers: false });
new ModTools(chat, channel, { shopId });
const cards = new OfferCards($('offer-slot'), channel, {
  onBuy: (card, quantity) => checkout.buy(card, quantity),
  productOf: (offerId) => {
    if (!offerProducts.has(offerId)) loadOffersSoon();
    return productOfOffer(offerId);
  },
});
// A card pinned after the page loaded names an offer we have not seen.
let offersTimer = 0;
function loadOffersSoon() {
  if (offersTimer) return;
  offersTimer = setTimeout(() => { offersTimer = 0; loadOffers(); }, 300);
}
const checkout = new Checkout(channel, { broadcastId, cards });

document.addEventListener('langchange', () => { render(); renderProducts(); showViewers(); });

render();
loadProducts();
loadOffers();
loadShop();
follow();
channel.start();
