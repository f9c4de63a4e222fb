// The home page: what is live right now.

import { initLangSwitch, t } from './i18n.js';
import { $, el, icon } from './dom.js';
import { get } from './api.js';

initLangSwitch();

let live = [];

function render() {
  const list = $('live-list');
  list.replaceChildren(...live.map((b) => el('li', {},
    el('a', { class: 'live-item', href: `/live/${encodeURIComponent(b.id)}` },
      el('span', { class: 'live-thumb' }, icon('field', 'live-thumb-icon'), el('span', { class: 'badge badge-live badge-small' }, el('span', { class: 'dot' }), t('state.live'))),
      el('span', { class: 'live-body' },
        el('span', { class: 'live-title', text: b.title }),
        el('span', { class: 'live-shop', text: b.shop.name }),
        el('span', { class: 'live-place' }, icon('place'), b.shop.place)),
      el('span', { class: 'live-go' }, t('home.watch'), icon('next'))))));
  list.removeAttribute('aria-busy');
  $('live-empty').hidden = live.length > 0;
}

async function refresh() {
  try {
    live = await get('/broadcasts/live');
    render();
  } catch (_) { /* keep what we showed */ }
  setTimeout(refresh, document.hidden ? 60000 : 20000);
}

document.addEventListener('langchange', render);
refresh();
