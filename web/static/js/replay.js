// The replay page (/replay/{id}): plays a broadcast's recording, segment
// after segment; chapters (each offer put on sale, pinned, sold out) seek
// when tapped; the chat and the product on screen follow the video's time.
// Everything comes from GET /api/v1/broadcasts/{id}/replay and its /chat
// pages; times are on one timeline (ms from the recording's start).

import './replay/words.js';
import { initLangSwitch, t, formatTime, yuan } from './i18n.js';
import { $, el } from './dom.js';
import { get } from './api.js';
import { smallPhoto } from './photo.js';
import { chatOnScreen, clock, pinnedAt, position, seekTarget } from './replay/timeline.js';

initLangSwitch();

const root = $('replay');
const broadcastId = root.dataset.broadcast;
const shopId = root.dataset.shop;
const video = $('player');
const playButton = $('replay-play');

/** Lines kept on screen: enough to read, few enough for an old phone. */
const CHAT_SHOWN = 60;
/** What each container needs to play, as the browser is asked. */
const CODECS = {
  'video/webm': 'video/webm; codecs="vp8, opus"',
  'video/x-matroska': 'video/x-matroska; codecs="avc1.42E01E, opus"',
};

let replay = null; // the API's ReplayView
let chat = []; // every line, by time
let current = -1; // the segment in the player
let shownChat = '';
let shownOffer = undefined;

const playable = (segment) => Boolean(video.canPlayType(CODECS[segment.content_type] || segment.content_type));

function note(text) {
  const n = $('replay-note');
  n.textContent = text || '';
  n.hidden = !text;
}

/** Puts segment `index` in the player at `seconds`, playing if asked. */
function load(index, seconds, play) {
  const segment = replay.segments[index];
  if (!segment || !playable(segment)) return;
  current = index;
  video.src = segment.url;
  video.addEventListener('loadedmetadata', () => {
    if (seconds > 0) video.currentTime = seconds;
    if (play) start();
  }, { once: true });
}

function start() {
  const p = video.play();
  if (p && p.catch) p.catch(() => { playButton.hidden = false; });
}

/** Seeks the whole replay to `ms` on its timeline. */
function seekTo(ms) {
  const target = seekTarget(replay.segments, ms);
  if (target.index !== current) load(target.index, target.seconds, true);
  else {
    video.currentTime = target.seconds;
    start();
  }
  update();
}

function now() {
  return current < 0 ? 0 : position(replay.segments, current, video.currentTime || 0);
}

function renderChapters() {
  const list = $('chapters');
  list.replaceChildren(...replay.chapters.map((c) => el('li', {},
    el('button', {
      type: 'button',
      class: `chapter chapter-${c.kind}`,
      data: { at: String(c.at_ms), kind: c.kind, offer: c.offer },
      onclick: () => seekTo(c.at_ms),
    },
    el('span', { class: 'chapter-time', text: clock(c.at_ms) }),
    el('span', { class: 'chapter-kind', text: t(`replay.ch.${c.kind}`) }),
    el('span', { class: 'chapter-title', text: c.title })))));
  $('chapters-empty').hidden = replay.chapters.length > 0;
}

function markChapter(ms) {
  let active = null;
  for (const button of $('chapters').querySelectorAll('.chapter')) {
    if (Number(button.dataset.at) <= ms) active = button;
  }
  for (const button of $('chapters').querySelectorAll('.chapter')) {
    button.classList.toggle('active', button === active);
  }
}

function renderChat(ms) {
  const lines = chatOnScreen(chat, ms, CHAT_SHOWN);
  const key = lines.map((l) => l.id).join(',');
  if (key === shownChat) return;
  shownChat = key;
  const list = $('replay-chat');
  list.replaceChildren(...lines.map((l) => el('li', { class: `replay-line role-${l.author_role}`, data: { id: l.id, at: String(l.at_ms) } },
    l.author_role !== 'viewer' ? el('span', { class: 'replay-role', text: t(`replay.role.${l.author_role}`) }) : null,
    el('span', { class: 'replay-author', text: l.author_name }),
    el('span', { class: 'replay-text', text: l.text }))));
  list.scrollTop = list.scrollHeight;
  $('chat-empty').hidden = lines.length > 0 || (current >= 0 && chat.length > 0);
}

/** What the product on screen offers now: the live room, or its price in the shop. */
function offerStatus(offer) {
  if (offer.open) {
    return el('a', { class: 'btn btn-live btn-small', href: `/live/${encodeURIComponent(broadcastId)}`, text: t('replay.buy_live') });
  }
  const p = offer.product;
  if (!p) return el('p', { class: 'muted small', text: t('replay.product_gone') });
  if (p.stock <= 0) return el('p', { class: 'muted small', text: t('replay.product_out') });
  return el('div', { class: 'replay-offer-shop' },
    el('p', { class: 'small', text: t('replay.in_stock', { n: p.stock, price: yuan(p.price_fen), unit: p.unit }) }),
    el('p', { class: 'muted small', text: t('replay.next_time') }),
    el('a', { class: 'btn btn-secondary btn-small', href: `/shop/${encodeURIComponent(shopId)}#products`, text: t('replay.see_shop') }));
}

function renderOffer(ms) {
  const id = pinnedAt(replay.pins, ms);
  if (id === shownOffer) return;
  shownOffer = id;
  const box = $('replay-offer');
  const offer = id && replay.offers.find((o) => o.id === id);
  box.hidden = !offer;
  if (!offer) return;
  const photo = offer.product && offer.product.photo;
  box.dataset.offer = offer.id;
  box.replaceChildren(...[
    photo ? el('img', { class: 'product-photo', src: smallPhoto(photo), alt: '' }) : null,
    el('div', { class: 'replay-offer-main' },
      el('p', { class: 'product-title', text: offer.title }),
      el('p', { class: 'product-price' },
        el('span', { class: 'per', text: t('replay.live_price') }), ' ',
        el('strong', { text: yuan(offer.price_fen) }), el('span', { class: 'per', text: `/${offer.unit}` })),
      offerStatus(offer)),
  ].filter(Boolean));
}

function update() {
  if (!replay) return;
  const ms = now();
  $('replay-clock').textContent = current >= 0 ? clock(ms) : '';
  markChapter(ms);
  renderChat(ms);
  renderOffer(ms);
}

function renderFiles() {
  const list = $('replay-file-list');
  list.replaceChildren(...replay.segments.map((s) => el('li', {},
    el('a', { href: s.url, download: '', class: 'replay-file' },
      el('span', { text: t('replay.part', { n: s.index }) }),
      el('span', { class: 'muted small', text: t('replay.size', { mb: (s.bytes / 1e6).toFixed(1) }) })))));
  $('replay-files').hidden = replay.segments.length === 0;
}

async function loadChat() {
  let after = null;
  do {
    const page = await get(`/broadcasts/${broadcastId}/replay/chat${after ? `?after=${encodeURIComponent(after)}` : ''}`);
    chat = chat.concat(page.messages);
    after = page.next;
    update();
  } while (after);
  if (chat.length === 0) $('chat-empty').textContent = t('replay.chat_none');
}

video.addEventListener('timeupdate', update);
video.addEventListener('seeked', update);
video.addEventListener('playing', () => { playButton.hidden = true; update(); });
video.addEventListener('ended', () => {
  const next = replay.segments.findIndex((s, i) => i > current && playable(s));
  if (next >= 0) load(next, 0, true);
});
video.addEventListener('error', () => note(t('replay.broken')));
playButton.addEventListener('click', () => {
  if (current < 0) return;
  start();
});
document.addEventListener('langchange', () => {
  if (!replay) return;
  renderChapters();
  renderFiles();
  shownChat = '';
  shownOffer = undefined;
  update();
});

async function main() {
  const when = $('replay-when');
  if (when.dateTime) when.textContent = formatTime(when.dateTime);
  try {
    replay = await get(`/broadcasts/${broadcastId}/replay`);
  } catch (_) {
    note(t('replay.load_failed'));
    return;
  }
  renderChapters();
  renderFiles();
  const first = replay.segments.findIndex(playable);
  if (first < 0) note(t('replay.cannot_play'));
  else {
    load(first, 0, false);
    playButton.hidden = false;
    if (replay.live) note(t('replay.still_live'));
  }
  update();
  try { await loadChat(); } catch (_) { /* the video plays without the chat */ }
}

main();
