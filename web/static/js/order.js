// The buyer's private order page (/o/{token}): where the order stands,
// what was bought, where it goes, and the tracking number once shipped.
// The token in the link is the only key; nothing here needs a sign-in.

import { initLangSwitch, t, formatTime, formatDate, yuan, amount, orderNumber } from './i18n.js';
import { $, toast } from './dom.js';
import { get } from './api.js';
import { describe } from './forms.js';
import { copyText } from './share.js';
import { showPaymentHow } from './payment.js';
import { smallPhoto } from './photo.js';
import './live/words.js';
import './orderwords.js';


initLangSwitch();

const root = $('order');
const STEPS = ['placed', 'paid', 'shipped', 'delivered'];
let order = null;

function render() {
  const o = order;
  const ref = orderNumber(o);
  const status = $('order-status');
  status.dataset.state = o.state;
  $('status-title').textContent = t(`ord.s.${o.state}`);
  let text;
  switch (o.state) {
    case 'placed':
      text = o.payment_method === 'cash_on_delivery'
        ? t('ord.t.placed_cod')
        : t('ord.t.placed_transfer', { total: yuan(o.total_fen), ref });
      break;
    case 'shipped':
      text = t('ord.t.shipped', { carrier: o.carrier || '' });
      break;
    case 'cancelled':
      text = o.cancel_reason ? t('ord.t.cancelled', { reason: o.cancel_reason }) : t('ord.t.cancelled_none');
      break;
    default:
      text = t(`ord.t.${o.state}`);
  }
  $('status-text').textContent = text;

  // Steps done so far; cash on delivery is paid at the door, so "paid" is
  // reached with delivery.
  const reached = {
    placed: true,
    paid: Boolean(o.paid_at) || (o.payment_method === 'cash_on_delivery' && Boolean(o.delivered_at)),
    shipped: Boolean(o.shipped_at),
    delivered: Boolean(o.delivered_at),
  };
  $('order-steps').hidden = o.state === 'cancelled';
  for (const step of STEPS) {
    const li = $('order-steps').querySelector(`[data-step="${step}"]`);
    li.classList.toggle('done', reached[step]);
  }

  $('tracking').hidden = !o.tracking_number;
  $('carrier').textContent = o.carrier || '';
  $('tracking-number').textContent = o.tracking_number || '';

  $('order-item').textContent = `${o.title} × ${amount(o.quantity, o.unit)}`;
  showProductPhoto(o);
  $('order-unit-price').textContent = t('ord.unit_price', { price: yuan(o.unit_price_fen), unit: o.unit });
  $('order-total').textContent = yuan(o.total_fen);
  $('order-presale').hidden = !o.ships_on;
  $('order-presale-tag').textContent = o.ships_on ? t('offer.presale', { date: formatDate(o.ships_on) }) : '';
  $('order-pay').textContent = t(`ord.pay.${o.payment_method}`);
  showPaymentHow($('order-pay-how'), o);

  $('order-name').textContent = o.recipient_name;
  $('order-mobile').textContent = o.mobile;
  $('order-address').textContent = o.address;
  $('order-id').textContent = orderNumber(o);
  $('order-created').textContent = formatTime(o.created_at);
  $('order-live').href = `/live/${encodeURIComponent(o.broadcast_id)}`;
}

/** The product's photo beside what was bought (quietly none if it has none). */
let photoOf = null;
async function showProductPhoto(o) {
  const img = $('order-photo');
  if (photoOf === null) {
    try { photoOf = (await get(`/products/${encodeURIComponent(o.product_id)}`)).photo || ''; } catch (_) { photoOf = ''; }
  }
  img.hidden = !photoOf;
  if (photoOf) img.src = smallPhoto(photoOf);
}

async function load() {
  try {
    order = await get(`/orders/private/${encodeURIComponent(root.dataset.token)}`);
    $('order-error').hidden = true;
    render();
    $('order-body').hidden = false;
  } catch (problem) {
    const box = $('order-error');
    box.textContent = describe(problem);
    box.hidden = false;
  } finally {
    $('order-loading').hidden = true;
  }
}

if (root) {
  $('order-refresh').addEventListener('click', async () => {
    await load();
    toast(t('ord.refreshed'));
  });
  $('copy-tracking').addEventListener('click', async () => {
    if (await copyText($('tracking-number').textContent)) toast(t('common.copied'));
  });
  document.addEventListener('langchange', () => { if (order) render(); });
  // Shipping news arrives while the page sits open in a chat app's browser.
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible' && order) load(); });
  load();
}
