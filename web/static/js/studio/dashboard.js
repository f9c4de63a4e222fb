// The studio's first screen: my shop, my broadcasts, my products.

import { $, el, icon } from '../dom.js';
import { get, del } from '../api.js';
import { t, formatTime, formatDate, yuan } from '../i18n.js';
import { ctx, show, go, ownedShops, chooseShop } from './context.js';
import { summary as ordersSummary } from './orders.js';
import { smallPhoto } from '../photo.js';

let data = null;

export function init() {
  $('sign-out').addEventListener('click', async () => {
    try { await del('/session'); } catch (_) { /* signed out either way */ }
    ctx.me = null;
    await go('/studio', { replace: true });
  });
  $('shop-select').addEventListener('change', async (e) => {
    chooseShop(e.target.value);
    await view();
  });
  document.addEventListener('langchange', () => { if (data && !$('view-home').hidden) render(); });
}

function stateChip(state) {
  return el('span', { class: 'state-chip', data: { state } }, el('span', { class: 'dot' }), t(`state.${state}`));
}

function render() {
  const { shop, broadcasts, products } = data;
  $('me-name').textContent = ctx.me.display_name;
  $('my-shop-name').textContent = shop.name;
  $('my-shop-place').textContent = shop.place;
  $('my-shop-story').textContent = shop.story;
  $('my-shop-story').hidden = !shop.story;
  const photo = $('my-shop-photo');
  photo.hidden = !shop.photo;
  if (shop.photo) photo.src = smallPhoto(shop.photo);

  const owned = ownedShops();
  $('shop-picker').hidden = owned.length < 2;
  $('shop-select').replaceChildren(...owned.map((s) => el('option', { value: s.id, selected: s.id === ctx.shopId }, s.name)));

  // Live first, then upcoming, then ended.
  const order = { live: 0, scheduled: 1, ended: 2 };
  const sorted = [...broadcasts].sort((a, b) => order[a.state] - order[b.state]);
  $('broadcast-list').replaceChildren(...sorted.map((b) => el('li', {},
    el('a', { class: `row row-${b.state}`, href: `/studio/broadcasts/${encodeURIComponent(b.id)}`, 'data-link': true },
      el('span', { class: 'row-main' },
        el('span', { class: 'row-title', text: b.title }),
        el('span', { class: 'row-sub' }, stateChip(b.state),
          el('span', { text: b.scheduled_at ? formatTime(b.scheduled_at) : t('bc.no_time') }))),
      b.state !== 'ended' ? el('span', { class: 'row-action' }, icon('camera'), t('bc.go')) : icon('next')))));
  $('broadcast-empty').hidden = broadcasts.length > 0;

  $('product-rows').replaceChildren(...products.map((p) => el('li', {},
    el('a', { class: 'row', href: `/studio/products/${encodeURIComponent(p.id)}`, 'data-link': true },
      p.photo ? el('img', { class: 'row-photo', src: smallPhoto(p.photo), alt: '', loading: 'lazy' }) : el('span', { class: 'row-photo' }, icon('bag')),
      el('span', { class: 'row-main' },
        el('span', { class: 'row-title', text: p.title }),
        el('span', { class: 'row-sub' },
          el('span', { class: p.stock > 0 ? 'tag' : 'tag tag-out', text: t('pr.stock', { n: p.stock }) }),
          p.ships_on ? el('span', { class: 'tag tag-presale', text: t('pr.presale', { date: formatDate(p.ships_on) }) }) : null)),
      el('span', { class: 'row-price' }, el('strong', { text: yuan(p.price_fen) }), el('span', { class: 'per', text: `/${p.unit}` })),
      icon('edit')))));
  $('product-empty').hidden = products.length > 0;
}

export async function view() {
  const id = ctx.shopId;
  const [shop, broadcasts, products] = await Promise.all([
    get(`/shops/${id}`),
    get(`/shops/${id}/broadcasts`),
    get(`/shops/${id}/products`),
  ]);
  data = { shop, broadcasts, products };
  render();
  show('view-home');
  ordersSummary();
}
