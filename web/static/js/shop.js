// The public shop page (/shop/{id}): what is live or coming up, the
// replays of past broadcasts, and the products with their prices. Buying
// happens in the live room (offers are made during broadcasts).

import './replay/words.js';
import { initLangSwitch, t, formatTime, formatDate, yuan } from './i18n.js';
import { $, el, icon } from './dom.js';
import { get } from './api.js';
import { smallPhoto } from './photo.js';

initLangSwitch();

const shopId = $('shop-page').dataset.shop;
let broadcasts = [];
let replays = [];
let products = [];

function item(href, badge, title, when, action) {
  return el('li', {},
    el('a', { class: 'live-item', href },
      el('span', { class: 'live-thumb' }, icon('field', 'live-thumb-icon'), badge),
      el('span', { class: 'live-body' },
        el('span', { class: 'live-title', text: title }),
        when ? el('span', { class: 'live-shop', text: when }) : null),
      el('span', { class: 'live-go' }, action, icon('next'))));
}

function render() {
  const now = broadcasts.filter((b) => b.state !== 'ended');
  $('shop-now').hidden = now.length === 0;
  $('shop-now-list').replaceChildren(...now.map((b) => item(
    `/live/${encodeURIComponent(b.id)}`,
    b.state === 'live'
      ? el('span', { class: 'badge badge-live badge-small' }, el('span', { class: 'dot' }), t('state.live'))
      : el('span', { class: 'badge badge-small', text: t('shop.scheduled') }),
    b.title,
    b.scheduled_at ? formatTime(b.scheduled_at) : '',
    t('shop.watch_live'))));
  const list = $('replay-list');
  list.replaceChildren(...replays.map((r) => item(
    r.replay_url,
    el('span', { class: 'badge badge-small', text: t('replay.badge') }),
    r.title,
    r.started_at ? formatTime(r.started_at) : '',
    t('shop.watch_replay'))));
  list.removeAttribute('aria-busy');
  $('replays-empty').hidden = replays.length > 0;
  $('product-list').replaceChildren(...products.map((p) => el('li', { class: 'product' },
    p.photo
      ? el('img', { class: 'product-photo', src: smallPhoto(p.photo), alt: '', loading: 'lazy', decoding: 'async' })
      : el('span', { class: 'product-photo' }, icon('field')),
    el('div', { class: 'product-main' },
      el('p', { class: 'product-title', text: p.title }),
      p.description ? el('p', { class: 'product-desc', text: p.description }) : null,
      el('p', { class: 'product-meta' },
        p.ships_on ? el('span', { class: 'tag tag-presale', text: t('viewer.presale', { date: formatDate(p.ships_on) }) }) : null,
        el('span', { class: p.stock > 0 ? 'tag' : 'tag tag-out', text: p.stock > 0 ? t('viewer.stock', { n: p.stock }) : t('viewer.soldout') }))),
    el('p', { class: 'product-price' }, el('strong', { text: yuan(p.price_fen) }), el('span', { class: 'per', text: `/${p.unit}` })))));
  $('products').hidden = products.length === 0;
}

async function main() {
  const [b, r, p, shop] = await Promise.allSettled([
    get(`/shops/${shopId}/broadcasts`),
    get(`/shops/${shopId}/replays`),
    get(`/shops/${shopId}/products`),
    get(`/shops/${shopId}`),
  ]);
  if (b.status === 'fulfilled') broadcasts = b.value;
  if (r.status === 'fulfilled') replays = r.value;
  if (p.status === 'fulfilled') products = p.value;
  if (shop.status === 'fulfilled' && shop.value.photo) {
    const photo = $('shop-photo');
    photo.src = smallPhoto(shop.value.photo);
    photo.hidden = false;
  }
  render();
}

document.addEventListener('langchange', render);
main();
