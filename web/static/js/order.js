// The buyer's private order page (/o/{token}): where the order stands,
// what was bought, where it goes, and the tracking number once shipped.
// The token in the link is the only key; nothing here needs a sign-in.

import { initLangSwitch, t, extend, formatTime, formatDate, yuan } from './i18n.js';
import { $, toast } from './dom.js';
import { get } from './api.js';
import { describe } from './forms.js';
import { copyText } from './share.js';
import { showPaymentHow } from './payment.js';
import './live/words.js';

extend({
  'ord.items': '买了什么',
  'ord.ship_to': '收货信息',
  'ord.number': '订单号',
  'ord.placed_at': '下单时间',
  'ord.refresh': '刷新',
  'ord.refreshed': '已刷新',
  'ord.back_live': '回到直播间',
  'ord.unit_price': '单价 {price}/{unit}',
  'ord.step_placed': '下单',
  'ord.step_paid': '付款',
  'ord.step_shipped': '发货',
  'ord.step_delivered': '收货',
  'ord.missing_title': '找不到这个订单',
  'ord.missing_text': '链接可能不完整。请从下单后复制的链接打开，或问问卖给您的农户。',
  'ord.s.placed': '已下单',
  'ord.s.paid': '已付款，等待发货',
  'ord.s.shipped': '农户已发货',
  'ord.s.delivered': '已送达',
  'ord.s.cancelled': '订单已取消',
  'ord.t.placed_cod': '货到付款。农户会尽快发货，发货后这里会显示快递单号。',
  'ord.t.placed_transfer': '请按农户说的方式转账 {total}，备注订单号 {ref}。农户收到钱后，这里会变成“已付款”。',
  'ord.t.paid': '农户已收到钱，会尽快发货。',
  'ord.t.shipped': '{carrier}，单号在下面，可以复制去查物流。',
  'ord.t.delivered': '东西已经送到了。吃得好，下次直播再来！',
  'ord.t.cancelled': '原因：{reason}',
  'ord.t.cancelled_none': '如有疑问，请联系农户。',
  'ord.pay.cash_on_delivery': '付款方式：货到付款',
  'ord.pay.bank_transfer': '付款方式：银行转账',
  'ord.pay.wechat_transfer': '付款方式：微信转账',
}, {
  'ord.items': 'What you bought',
  'ord.ship_to': 'Delivery',
  'ord.number': 'Order number',
  'ord.placed_at': 'Ordered',
  'ord.refresh': 'Refresh',
  'ord.refreshed': 'Up to date',
  'ord.back_live': 'Back to the broadcast',
  'ord.unit_price': '{price} per {unit}',
  'ord.step_placed': 'Ordered',
  'ord.step_paid': 'Paid',
  'ord.step_shipped': 'Shipped',
  'ord.step_delivered': 'Delivered',
  'ord.missing_title': 'Order not found',
  'ord.missing_text': 'The link may be incomplete. Open the link you copied after ordering, or ask the farmer.',
  'ord.s.placed': 'Order placed',
  'ord.s.paid': 'Paid, waiting to ship',
  'ord.s.shipped': 'Shipped',
  'ord.s.delivered': 'Delivered',
  'ord.s.cancelled': 'Order cancelled',
  'ord.t.placed_cod': 'Cash on delivery. The farmer ships soon; the tracking number appears here.',
  'ord.t.placed_transfer': 'Transfer {total} the way the farmer said, with order number {ref} as the note. This page shows “paid” once the money arrives.',
  'ord.t.paid': 'The farmer has the money and ships soon.',
  'ord.t.shipped': '{carrier}: copy the tracking number below to follow it.',
  'ord.t.delivered': 'It has arrived. Enjoy, and see you at the next broadcast!',
  'ord.t.cancelled': 'Reason: {reason}',
  'ord.t.cancelled_none': 'Questions? Ask the farmer.',
  'ord.pay.cash_on_delivery': 'Payment: cash on delivery',
  'ord.pay.bank_transfer': 'Payment: bank transfer',
  'ord.pay.wechat_transfer': 'Payment: WeChat transfer',
});

initLangSwitch();

const root = $('order');
const STEPS = ['placed', 'paid', 'shipped', 'delivered'];
let order = null;

function render() {
  const o = order;
  const ref = o.id.slice(-6).toUpperCase();
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

  $('order-item').textContent = `${o.title} × ${o.quantity} ${o.unit}`;
  $('order-unit-price').textContent = t('ord.unit_price', { price: yuan(o.unit_price_fen), unit: o.unit });
  $('order-total').textContent = yuan(o.total_fen);
  $('order-presale').hidden = !o.ships_on;
  $('order-presale-tag').textContent = o.ships_on ? t('offer.presale', { date: formatDate(o.ships_on) }) : '';
  $('order-pay').textContent = t(`ord.pay.${o.payment_method}`);
  showPaymentHow($('order-pay-how'), o);

  $('order-name').textContent = o.recipient_name;
  $('order-mobile').textContent = o.mobile;
  $('order-address').textContent = o.address;
  $('order-id').textContent = o.id;
  $('order-created').textContent = formatTime(o.created_at);
  $('order-live').href = `/live/${encodeURIComponent(o.broadcast_id)}`;
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
