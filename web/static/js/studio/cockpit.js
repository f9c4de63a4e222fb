// The live cockpit's tabs: chat, selling, orders, sharing. One panel shows
// at a time under the camera, which stays on screen; the orders tab counts
// the orders that arrived while another panel was open.

import { $ } from '../dom.js';
import { t } from '../i18n.js';

const PANELS = ['chat', 'sell', 'orders', 'more'];
let unseen = 0;

export function selectPanel(name) {
  for (const panel of PANELS) {
    const on = panel === name;
    $(`tab-${panel}`).setAttribute('aria-selected', String(on));
    $(`panel-${panel}`).hidden = !on;
  }
  if (name === 'orders') countNewOrders(-unseen);
}

export function currentPanel() {
  return PANELS.find((p) => !$(`panel-${p}`).hidden) || 'chat';
}

/** Adds `n` new orders to the tab's badge (unless the orders are on screen). */
export function countNewOrders(n) {
  if (n > 0 && currentPanel() === 'orders') return;
  unseen = Math.max(0, unseen + n);
  const badge = $('orders-badge');
  badge.hidden = unseen === 0;
  badge.textContent = String(unseen);
  badge.setAttribute('aria-label', t('cockpit.new_orders', { n: unseen }));
}

export function initCockpit() {
  $('cockpit-tabs').addEventListener('click', (e) => {
    const tab = e.target.closest && e.target.closest('[data-panel]');
    if (tab) selectPanel(tab.dataset.panel);
  });
  // Arrow keys move between tabs, as in any tab list.
  $('cockpit-tabs').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const i = PANELS.indexOf(currentPanel());
    const next = PANELS[(i + (e.key === 'ArrowRight' ? 1 : PANELS.length - 1)) % PANELS.length];
    selectPanel(next);
    $(`tab-${next}`).focus();
  });
}

export function resetCockpit() {
  unseen = 0;
  countNewOrders(0);
  selectPanel('chat');
}
