// How to pay a shop by transfer, in the farmer's own words.

import { get } from './api.js';

/**
 * For transfer orders, the farmer's own words on how to pay (WeChat ID,
 * bank account), from the shop. Shown as text; hidden when there are none.
 */
export async function showPaymentHow(node, order) {
  node.hidden = true;
  if (order.payment_method === 'cash_on_delivery' || order.state !== 'placed') return;
  try {
    const shop = await get(`/shops/${encodeURIComponent(order.shop_id)}`);
    node.textContent = shop.payment_note || '';
    node.hidden = !shop.payment_note;
  } catch (_) { /* the generic transfer note above still stands */ }
}
