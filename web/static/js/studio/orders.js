// The farmer's orders: the list (filtered by state), the actions that move
// an order along (money received, shipped with carrier and tracking number,
// delivered, cancelled with a reason) and the CSV export for shipping.
// Also the summary card on the dashboard.

import { $, el, icon, toast } from '../dom.js';
import { get, post } from '../api.js';
import { t, yuan, formatTime, formatDate, amount, orderNumber, lang } from '../i18n.js';
import { showProblem, clearErrors, busy, describe } from '../forms.js';
import { openSheet } from '../sheet.js';
import { ctx, show } from './context.js';
import './words.js';

const STATES = ['placed', 'paid', 'shipped', 'delivered', 'cancelled'];
const CARRIERS = ['中国邮政', 'EMS', '顺丰速运', '中通快递', '圆通速递', '韵达快递', '申通快递', '京东物流', '极兔速递'];
// Offered on the orders page so an order's choices and the CSV speak the
// page's language and the phone's clock.
function csvParams() {
  return { lang: lang() === 'en' ? 'en' : 'zh-CN', tz_offset_minutes: String(-new Date().getTimezoneOffset()) };
}

let orders = [];
let filter = '';

function stateChip(state) {
  const look = { placed: 'live', paid: 'scheduled', shipped: 'scheduled', delivered: 'ended', cancelled: 'ended' }[state];
  return el('span', { class: `state-chip order-chip order-${state}`, data: { state: look } }, el('span', { class: 'dot' }), t(`so.s.${state}`));
}

export function init() {
  document.addEventListener('langchange', () => {
    if (!$('view-orders').hidden) render();
    if (!$('view-home').hidden && lastSummary) renderSummary(lastSummary);
  });
}

// ── the orders view ───────────────────────────────────────────────────

function renderFilters() {
  const counts = Object.fromEntries(STATES.map((s) => [s, orders.filter((o) => o.state === s).length]));
  const tab = (value, words, n) => {
    const b = el('button', { type: 'button', class: 'filter-tab', role: 'tab', 'aria-selected': String(filter === value), data: { state: value } },
      el('span', { text: words }), el('span', { class: 'count', text: String(n) }));
    b.addEventListener('click', () => { filter = value; render(); });
    return b;
  };
  $('order-filters').replaceChildren(tab('', t('so.all'), orders.length), ...STATES.map((s) => tab(s, t(`so.s.${s}`), counts[s])));
  const selected = $('order-filters').querySelector('[aria-selected="true"]');
  if (selected && selected.scrollIntoView) selected.scrollIntoView({ block: 'nearest', inline: 'center' });
  const query = new URLSearchParams(csvParams());
  if (filter) query.set('state', filter);
  $('orders-csv').href = `/api/v1/shops/${encodeURIComponent(ctx.shopId)}/orders.csv?${query}`;
}

function actionButton(name, words, cls, handler) {
  const b = el('button', { type: 'button', class: `btn btn-small ${cls}` }, icon(name), el('span', { text: words }));
  b.addEventListener('click', handler);
  return b;
}

/**
 * One order with the actions its state allows. `onUpdated` gets the order
 * as the server has it after an action (the orders page replaces its copy;
 * the live cockpit its own).
 */
export function orderCard(o, onUpdated = replace) {
  const cod = o.payment_method === 'cash_on_delivery';
  const actions = [];
  if (o.state === 'placed') actions.push(actionButton('cash', t('so.mark_paid'), cod ? 'btn-quiet' : 'btn-primary', () => act(o, 'paid', onUpdated)));
  if (o.state === 'paid' || (o.state === 'placed' && cod)) actions.push(actionButton('truck', t('so.ship'), 'btn-primary', () => ship(o, onUpdated)));
  if (o.state === 'shipped') actions.push(actionButton('check', t('so.delivered'), 'btn-primary', () => act(o, 'delivered', onUpdated)));
  // Once the parcel is on its way, cancelling is a conversation, not a button.
  if (o.state === 'placed' || o.state === 'paid') {
    actions.push(actionButton('close', t('so.cancel'), 'btn-danger-quiet', () => cancel(o, onUpdated)));
  }
  return el('li', { class: 'card order-card', data: { order: o.id, state: o.state } },
    el('div', { class: 'order-top' },
      stateChip(o.state),
      el('span', { class: 'muted small', text: `${formatTime(o.created_at)} · ${orderNumber(o)}` })),
    el('div', { class: 'order-line' },
      el('p', { class: 'order-item' }, el('strong', { text: o.title }), ` × ${amount(o.quantity, o.unit)}`,
        o.ships_on ? el('span', { class: 'tag tag-presale', text: `${t('so.presale')} ${formatDate(o.ships_on)}` }) : null),
      el('p', { class: 'order-total' }, el('strong', { text: yuan(o.total_fen) }))),
    el('p', { class: 'order-who' }, icon('user'), el('span', { text: o.recipient_name }),
      el('a', { class: 'tel', href: `tel:${o.mobile}` }, icon('phone'), el('span', { text: o.mobile }))),
    el('p', { class: 'order-addr' }, icon('place'), el('span', { text: o.address })),
    el('p', { class: 'order-pay' }, el('span', { class: 'tag', text: t(`so.pay.${o.payment_method}`) }),
      o.tracking_number ? el('span', { class: 'order-tracking' }, icon('truck'), el('span', { text: t('so.tracking_line', { carrier: o.carrier || '', number: o.tracking_number }) })) : null),
    o.cancel_reason ? el('p', { class: 'muted small', text: t('so.reason_line', { reason: o.cancel_reason }) }) : null,
    actions.length ? el('div', { class: 'btn-row order-actions' }, ...actions) : null);
}

function render() {
  renderFilters();
  const shown = filter ? orders.filter((o) => o.state === filter) : orders;
  $('order-list').replaceChildren(...shown.map((o) => orderCard(o)));
  $('orders-empty').hidden = shown.length > 0;
  const live = shown.filter((o) => o.state !== 'cancelled');
  $('orders-sum').textContent = shown.length ? t('so.sum', { n: shown.length, total: yuan(live.reduce((s, o) => s + o.total_fen, 0)) }) : '';
}

function replace(updated) {
  orders = orders.map((o) => (o.id === updated.id ? updated : o));
  render();
}

async function act(o, what, onUpdated) {
  try {
    onUpdated(await post(`/orders/${encodeURIComponent(o.id)}/${what}`));
    toast(t(`so.done_${what}`));
  } catch (problem) {
    toast(describe(problem), 4000);
  }
}

function ship(o, onUpdated) {
  // The common carriers as one-tap chips; any other is typed in the field.
  const carrier = el('input', { name: 'carrier', type: 'text', required: true, maxlength: '30', value: o.carrier || '', placeholder: t('so.carrier_ph') });
  const chips = el('div', { class: 'chips carrier-chips', role: 'group', 'aria-label': t('so.carrier') }, ...CARRIERS.map((c) => {
    const b = el('button', { type: 'button', class: 'chip', 'aria-pressed': String(c === carrier.value), text: c });
    b.addEventListener('click', () => {
      carrier.value = c;
      chips.querySelectorAll('.chip').forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
      number.focus();
    });
    return b;
  }));
  carrier.addEventListener('input', () => chips.querySelectorAll('.chip').forEach((x) => x.setAttribute('aria-pressed', String(x.textContent === carrier.value))));
  const number = el('input', { name: 'tracking_number', type: 'text', required: true, maxlength: '40', autocapitalize: 'characters', inputmode: 'latin', value: o.tracking_number || '' });
  const form = el('form', { class: 'form', novalidate: true },
    el('p', { class: 'muted', text: `${o.recipient_name} · ${o.title} × ${amount(o.quantity, o.unit)}` }),
    el('div', { class: 'field' }, el('span', { class: 'field-label', text: t('so.carrier') }), chips, carrier,
      el('span', { class: 'field-error', 'data-error-for': 'carrier' })),
    el('label', { class: 'field' }, el('span', { class: 'field-label', text: t('so.tracking') }), number,
      el('span', { class: 'field-error', 'data-error-for': 'tracking_number' })),
    el('p', { class: 'form-error', role: 'alert', hidden: true }),
    el('button', { type: 'submit', class: 'btn btn-primary btn-block btn-big' }, icon('truck'), el('span', { text: t('so.ship_go') })));
  const sheet = openSheet({ title: t('so.ship_title'), content: form });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form, async () => {
      clearErrors(form);
      try {
        onUpdated(await post(`/orders/${encodeURIComponent(o.id)}/shipped`, { carrier: carrier.value.trim(), tracking_number: number.value.trim() }));
        sheet.close();
        toast(t('so.done_shipped'));
      } catch (problem) {
        showProblem(form, problem);
      }
    });
  });
  if (!carrier.value) chips.querySelector('.chip').focus();
  else number.focus();
}

function cancel(o, onUpdated) {
  const reason = el('input', { name: 'reason', type: 'text', maxlength: '200', placeholder: t('so.reason_ph') });
  const keep = el('button', { type: 'button', class: 'btn btn-quiet', text: t('so.cancel_keep') });
  const form = el('form', { class: 'form', novalidate: true },
    el('p', { class: 'muted', text: `${o.recipient_name} · ${o.title} × ${amount(o.quantity, o.unit)} · ${yuan(o.total_fen)}` }),
    el('label', { class: 'field' }, el('span', { class: 'field-label', text: t('so.reason') }), reason,
      el('span', { class: 'field-error', 'data-error-for': 'reason' })),
    el('p', { class: 'form-error', role: 'alert', hidden: true }),
    el('div', { class: 'btn-row' }, keep, el('button', { type: 'submit', class: 'btn btn-stop', text: t('so.cancel_go') })));
  const sheet = openSheet({ title: t('so.cancel_title'), content: form });
  keep.addEventListener('click', () => sheet.close());
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(form, async () => {
      clearErrors(form);
      try {
        onUpdated(await post(`/orders/${encodeURIComponent(o.id)}/cancel`, { reason: reason.value.trim() }));
        sheet.close();
        toast(t('so.done_cancelled'));
      } catch (problem) {
        showProblem(form, problem);
      }
    });
  });
  reason.focus();
}

export async function view() {
  orders = await get(`/shops/${encodeURIComponent(ctx.shopId)}/orders`);
  const wanted = new URLSearchParams(location.search).get('state');
  filter = STATES.includes(wanted) ? wanted : '';
  render();
  show('view-orders');
}

// ── the dashboard card ───────────────────────────────────────────────

let lastSummary = null;

function renderSummary(list) {
  lastSummary = list;
  const slot = $('orders-slot');
  const count = (s) => list.filter((o) => o.state === s).length;
  const recent = list.slice(0, 3);
  slot.replaceChildren(
    el('div', { class: 'section-head' },
      el('h2', { class: 'section-title' }, icon('box'), el('span', { text: t('so.title') })),
      el('a', { class: 'btn btn-primary btn-small', href: '/studio/orders', 'data-link': true }, icon('list'), el('span', { text: t('so.see_all') }))),
    list.length
      ? el('p', { class: count('placed') + count('paid') ? 'orders-waiting' : 'muted', text: t('so.waiting', { placed: count('placed'), paid: count('paid') }) })
      : el('p', { class: 'empty', text: t('so.none') }),
    el('ul', { class: 'row-list' }, ...recent.map((o) => el('li', {},
      el('a', { class: 'row', href: '/studio/orders', 'data-link': true },
        el('span', { class: 'row-main' },
          el('span', { class: 'row-title', text: `${o.title} × ${amount(o.quantity, o.unit)}` }),
          el('span', { class: 'row-sub' }, stateChip(o.state), el('span', { text: `${o.recipient_name} · ${formatTime(o.created_at)}` }))),
        el('span', { class: 'row-price' }, el('strong', { text: yuan(o.total_fen) })))))));
  slot.hidden = false;
}

/** Fills the dashboard's orders card (quietly keeps it hidden on failure). */
export async function summary() {
  try {
    renderSummary(await get(`/shops/${encodeURIComponent(ctx.shopId)}/orders`));
  } catch (_) {
    $('orders-slot').hidden = true;
  }
}
