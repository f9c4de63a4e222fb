// Selling during a broadcast, in the studio: put a product on sale (a live
// offer: live price, how many, per-buyer limit, optional start countdown
// and end, how long a buyer's units are held, whether guests may buy or
// only signed-in mobile accounts) and show it on every
// viewer's screen (`pin_offer` over the live channel); watch stock fall as
// viewers buy; take it off screens or stop selling; see orders arrive.

import { t, yuan } from '../i18n.js';
import { el, icon, toast } from '../dom.js';
import { get, post } from '../api.js';
import { showProblem, clearErrors, busy, fieldError, describe } from '../forms.js';
import { serverNow, msUntil, clockText } from '../clock.js';
import { parseYuan, fenToYuanText } from './products.js';
import { confirmSheet } from './context.js';
import './words.js';

const STARTS = [0, 1, 3, 5, 10];            // minutes from now
const LENGTHS = [0, 15, 30, 60, 120];       // minutes of selling; 0 = no end
const HOLDS = [5, 10, 15, 30];              // minutes a reservation is held

/** A row of choice buttons, one pressed; `.value` is the pressed one. */
function chips(options, initial, label) {
  const group = el('div', { class: 'chips', role: 'group', 'aria-label': label });
  let value = initial;
  const buttons = options.map(([v, words]) => {
    const b = el('button', { type: 'button', class: 'chip', 'aria-pressed': String(v === initial), text: words, data: { value: String(v) } });
    b.addEventListener('click', () => {
      value = v;
      buttons.forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
    });
    return b;
  });
  group.append(...buttons);
  return { node: group, get value() { return value; } };
}

function stepper(name, value, min, max) {
  const input = el('input', { name, type: 'number', inputmode: 'numeric', min: String(min), max: String(max), step: '1', value: String(value) });
  const step = (d) => () => {
    const n = Math.min(max, Math.max(min, (parseInt(input.value, 10) || 0) + d));
    input.value = String(n);
  };
  const minus = el('button', { type: 'button', class: 'stepper-btn', 'aria-label': '-1', text: '−' });
  const plus = el('button', { type: 'button', class: 'stepper-btn', 'aria-label': '+1', text: '+' });
  minus.addEventListener('click', step(-1));
  plus.addEventListener('click', step(1));
  return { node: el('span', { class: 'stepper' }, minus, input, plus), input };
}

function field(labelKey, control, errorFor) {
  return el('label', { class: 'field' },
    el('span', { class: 'field-label', text: t(labelKey) }),
    control,
    el('span', { class: 'field-error', 'data-error-for': errorFor }));
}

export class OfferDesk {
  /**
   * @param {HTMLElement} slot
   * @param {import('../live/channel.js').LiveChannel|null} channel  null for an ended broadcast
   */
  constructor(slot, channel, { broadcast, shopId, seeOrders }) {
    this.slot = slot;
    this.seeOrders = seeOrders;
    this.channel = channel;
    this.broadcast = broadcast;
    this.shopId = shopId;
    this.offers = new Map(); // id -> OfferView (from the API), kept current from the room
    this.pinned = new Set();
    this.products = [];
    this.orders = { n: 0, total: 0 };
    this.build();
    if (channel) this.listen();
    this.timer = setInterval(() => this.tickTimers(), 1000);
    this.onLang = () => { this.build(); this.render(); };
    document.addEventListener('langchange', this.onLang);
    this.load();
  }

  destroy() {
    clearInterval(this.timer);
    document.removeEventListener('langchange', this.onLang);
    this.slot.hidden = true;
    this.slot.replaceChildren();
  }

  get live() {
    return this.broadcast.state !== 'ended' && Boolean(this.channel);
  }

  build() {
    this.ordersLine = el('p', { class: 'desk-orders' });
    this.list = el('ul', { class: 'desk-list' });
    this.empty = el('p', { class: 'empty', text: t('sell.none'), hidden: true });
    this.newButton = el('button', { type: 'button', class: 'btn btn-live btn-block btn-big' }, icon('plus'), el('span', { text: t('sell.new') }));
    this.formBox = el('div', { class: 'desk-form', hidden: true });
    this.newButton.addEventListener('click', () => this.openForm());
    // replaceChildren() would write a null as the text "null": leave it out.
    this.slot.replaceChildren(...[
      el('div', { class: 'section-head' },
        el('h2', { class: 'section-title' }, icon('bag'), el('span', { text: t('sell.title') })),
        this.seeOrdersButton()),
      this.ordersLine, this.list, this.empty,
      this.live ? this.newButton : null, this.formBox].filter(Boolean));
    this.slot.hidden = false;
  }

  /** Opens this broadcast's orders next to the stream (or the orders page). */
  seeOrdersButton() {
    if (!this.seeOrders) {
      return el('a', { class: 'btn btn-secondary btn-small', href: '/studio/orders', 'data-link': true }, icon('list'), el('span', { text: t('sell.see_orders') }));
    }
    const b = el('button', { type: 'button', class: 'btn btn-secondary btn-small desk-see-orders' }, icon('list'), el('span', { text: t('sell.see_orders') }));
    b.addEventListener('click', this.seeOrders);
    return b;
  }

  listen() {
    const c = this.channel;
    const pinnedFrom = (state) => {
      if (!state) return;
      this.pinned = new Set(state.offers.map((o) => o.offer));
      state.offers.forEach((o) => this.merge(o));
      this.render();
    };
    c.on('snapshot', (m) => pinnedFrom(m.state));
    c.on('room_state', (m) => pinnedFrom(m.state));
    c.on('offer_pinned', (m) => { this.pinned.add(m.offer.offer); this.merge(m.offer); this.render(); });
    c.on('offer_unpinned', (m) => { this.pinned.delete(m.offer); this.render(); });
    c.on('offer_updated', (m) => { this.merge(m.offer); this.render(); });
    // The orders tab rings and counts each sale; here the totals follow.
    c.on('sale', () => this.loadOrders());
  }

  /** A live card's numbers into the API's view of the offer. */
  merge(card) {
    const o = this.offers.get(card.offer);
    if (!o) {
      // Pinned before this page loaded it (another phone): fetch it whole.
      this.loadOffers();
      return;
    }
    if (card.state === 'ended' && o.state !== 'ended') {
      // Ending returns unsold units to stock and settles the holds: the
      // card's numbers no longer add up to the allotment, so ask.
      o.state = 'ended';
      this.refetch(o.id);
      return;
    }
    o.available = card.available;
    o.sold = card.sold;
    o.state = card.state;
    o.held = Math.max(0, o.allotted - o.available - o.sold);
  }

  async refetch(id) {
    try {
      this.offers.set(id, await get(`/offers/${encodeURIComponent(id)}`));
      this.render();
    } catch (_) { /* the list reload on the next event fixes it */ }
  }

  async load() {
    await Promise.all([this.loadOffers(), this.loadProducts(), this.loadOrders()]);
  }

  loadOffers() {
    // Several unknown offers in one snapshot need one fetch, not several.
    if (!this.offersLoading) {
      this.offersLoading = this.fetchOffers().finally(() => { this.offersLoading = null; });
    }
    return this.offersLoading;
  }

  async fetchOffers() {
    try {
      const list = await get(`/broadcasts/${encodeURIComponent(this.broadcast.id)}/offers`);
      for (const o of list) {
        const known = this.offers.get(o.id);
        // The room's numbers are newer than a snapshot that raced them.
        if (known && known.sold > o.sold) Object.assign(o, { sold: known.sold, available: known.available, state: known.state });
        this.offers.set(o.id, o);
      }
      this.render();
    } catch (_) { /* shown as empty; the next event retries */ }
  }

  async loadProducts() {
    try {
      this.products = await get(`/shops/${encodeURIComponent(this.shopId)}/products`);
    } catch (_) {
      this.products = [];
    }
  }

  async loadOrders() {
    try {
      const orders = await get(`/shops/${encodeURIComponent(this.shopId)}/orders?broadcast_id=${encodeURIComponent(this.broadcast.id)}`);
      const counted = orders.filter((o) => o.state !== 'cancelled');
      this.orders = { n: counted.length, total: counted.reduce((sum, o) => sum + o.total_fen, 0) };
      this.renderOrders();
    } catch (_) { /* keep the last numbers */ }
  }

  renderOrders() {
    this.ordersLine.hidden = this.orders.n === 0;
    this.ordersLine.replaceChildren(icon('box'), el('span', { text: t('sell.orders', { n: this.orders.n, total: yuan(this.orders.total) }) }));
  }

  render() {
    const order = { open: 0, upcoming: 1, sold_out: 2, ended: 3 };
    const offers = [...this.offers.values()].sort((a, b) =>
      (order[a.state] - order[b.state]) || String(b.id).localeCompare(String(a.id)));
    this.list.replaceChildren(...offers.map((o) => this.row(o)));
    this.empty.hidden = offers.length > 0;
    this.renderOrders();
  }

  row(o) {
    const onScreen = this.pinned.has(o.id);
    const over = o.state === 'ended';
    const bar = el('progress', { class: 'stock-bar', max: String(Math.max(1, o.allotted)), value: String(o.sold) });
    const timer = el('span', { class: 'offer-timer', data: { offer: o.id } });
    const li = el('li', { class: `desk-offer${onScreen ? ' on-screen' : ''}`, data: { offer: o.id, state: o.state } },
      el('div', { class: 'desk-top' },
        el('strong', { class: 'desk-title', text: o.title }),
        el('span', { class: 'state-chip', data: { state: o.state === 'open' ? 'live' : o.state === 'ended' ? 'ended' : 'scheduled' } },
          el('span', { class: 'dot' }), t(`sell.s.${o.state}`))),
      el('div', { class: 'desk-mid' },
        el('span', { class: 'desk-price' }, el('strong', { text: yuan(o.price_fen) }), el('span', { class: 'per', text: `/${o.unit}` })),
        onScreen ? el('span', { class: 'tag tag-screen' }, icon('eye'), t('sell.on_screen')) : null,
        o.buyers === 'accounts_only' ? el('span', { class: 'tag', text: t('sell.accounts_tag') }) : null,
        timer),
      bar,
      el('p', { class: 'desk-counts', text: t('sell.counts', { sold: o.sold, held: o.held, available: o.available, allotted: o.allotted }) }));
    this.fillTimer(timer, o);
    if (this.live && !over) {
      const pin = el('button', { type: 'button', class: onScreen ? 'btn btn-quiet btn-small' : 'btn btn-primary btn-small' },
        icon(onScreen ? 'undo' : 'pin'), el('span', { text: t(onScreen ? 'sell.unpin' : 'sell.pin') }));
      pin.addEventListener('click', () => this.pin(o.id, !onScreen));
      const end = el('button', { type: 'button', class: 'btn btn-danger-quiet btn-small' }, icon('stop'), el('span', { text: t('sell.end_now') }));
      end.addEventListener('click', () => this.end(o));
      li.append(el('div', { class: 'btn-row' }, pin, end));
    }
    return li;
  }

  fillTimer(node, o) {
    let text = '';
    if (o.state === 'upcoming' && o.starts_at) text = t('offer.starts_in', { t: clockText(msUntil(o.starts_at)) });
    else if (o.state === 'open' && o.ends_at) text = t('offer.ends_in', { t: clockText(msUntil(o.ends_at)) });
    node.hidden = !text;
    node.replaceChildren(icon('clock'), el('span', { text }));
  }

  tickTimers() {
    this.list.querySelectorAll('.offer-timer[data-offer]').forEach((node) => {
      const o = this.offers.get(node.dataset.offer);
      if (o) this.fillTimer(node, o);
    });
  }

  pin(offerId, show) {
    const sent = this.channel && this.channel.send(show ? { type: 'pin_offer', offer: offerId } : { type: 'unpin_offer', offer: offerId });
    if (!sent) toast(t('sell.not_connected'), 4000);
  }

  async end(o) {
    if (!(await confirmSheet(t('sell.end_q', { title: o.title }), t('sell.end_now')))) return;
    try {
      const ended = await post(`/offers/${encodeURIComponent(o.id)}/end`);
      this.offers.set(ended.id, ended);
      // Ended offers leave the screens, making room for the next.
      if (this.pinned.has(o.id)) this.pin(o.id, false);
      this.render();
      toast(t('sell.ended'));
    } catch (problem) {
      toast(describe(problem), 4000);
    }
  }

  openForm() {
    this.newButton.hidden = true;
    this.formBox.hidden = false;
    this.formBox.replaceChildren(this.form());
    this.formBox.scrollIntoView({ block: 'start', behavior: 'smooth' });
  }

  closeForm() {
    this.formBox.hidden = true;
    this.formBox.replaceChildren();
    this.newButton.hidden = false;
  }

  form() {
    const products = this.products.filter((p) => p.stock > 0);
    if (!products.length) {
      return el('div', { class: 'form' }, el('p', { class: 'empty', text: t('sell.no_products') }),
        el('a', { class: 'btn btn-secondary btn-block', href: '/studio/products/new', 'data-link': true }, icon('plus'), el('span', { text: t('pr.new') })));
    }
    const select = el('select', { name: 'product_id' }, ...products.map((p) =>
      el('option', { value: p.id, text: t('sell.product_stock', { title: p.title, n: p.stock }) })));
    const price = el('input', { name: 'price', type: 'text', inputmode: 'decimal', required: true, 'data-api-field': 'price' });
    const quantity = stepper('quantity', 1, 1, 1000000);
    const limit = stepper('per_buyer_limit', 5, 1, 1000);
    const fill = () => {
      const p = products.find((x) => x.id === select.value) || products[0];
      price.value = fenToYuanText(p.price_fen);
      quantity.input.value = String(Math.min(p.stock, 50));
      quantity.input.max = String(p.stock);
    };
    select.addEventListener('change', fill);
    fill();
    const start = chips(STARTS.map((m) => [m, m === 0 ? t('sell.start_now') : t('sell.start_in', { n: m })]), 0, t('sell.start'));
    const length = chips(LENGTHS.map((m) => [m, m === 0 ? t('sell.end_none') : m % 60 === 0 ? t('dur.h', { n: m / 60 }) : t('dur.m', { n: m })]), 0, t('sell.end'));
    const hold = chips(HOLDS.map((m) => [m, t('sell.hold_n', { n: m })]), 10, t('sell.hold'));
    const buyers = chips([['anyone', t('sell.buyers_anyone')], ['accounts_only', t('sell.buyers_accounts')]], 'anyone', t('sell.buyers'));
    const cancel = el('button', { type: 'button', class: 'btn btn-quiet btn-block', text: t('common.cancel') });
    const form = el('form', { class: 'form', novalidate: true },
      el('h3', { class: 'form-title', text: t('sell.form_title') }),
      field('sell.product', select, 'product_id'),
      field('sell.price', el('span', { class: 'input-affix' }, el('span', { class: 'affix', text: '¥' }), price), 'price'),
      // Each stepper gets the card's full width: two side by side do not
      // fit a 360 px phone.
      field('sell.quantity', quantity.node, 'quantity'),
      field('sell.limit', limit.node, 'per_buyer_limit'),
      el('div', { class: 'field' }, el('span', { class: 'field-label', text: t('sell.start') }), start.node, el('span', { class: 'field-error', 'data-error-for': 'starts_at' })),
      el('div', { class: 'field' }, el('span', { class: 'field-label', text: t('sell.end') }), length.node, el('span', { class: 'field-error', 'data-error-for': 'ends_at' })),
      el('div', { class: 'field' }, el('span', { class: 'field-label', text: t('sell.hold') }), hold.node, el('span', { class: 'field-error', 'data-error-for': 'hold_secs' })),
      el('div', { class: 'field' }, el('span', { class: 'field-label', text: t('sell.buyers') }), buyers.node,
        el('span', { class: 'muted', text: t('sell.buyers_hint') }),
        el('span', { class: 'field-error', 'data-error-for': 'buyers' })),
      el('p', { class: 'form-error', role: 'alert', hidden: true }),
      el('button', { type: 'submit', class: 'btn btn-live btn-block btn-big' }, icon('bag'), el('span', { text: t('sell.go') })),
      cancel);
    cancel.addEventListener('click', () => this.closeForm());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      busy(form, () => this.create(form, { select, price, quantity, limit, start, length, hold, buyers }));
    });
    return form;
  }

  async create(form, f) {
    clearErrors(form);
    const priceFen = parseYuan(f.price.value);
    if (priceFen === null || priceFen <= 0) {
      fieldError(form, 'price', t('e.price'));
      return;
    }
    const whole = (input, field) => {
      const text = String(input.value).trim();
      if (!/^\d+$/.test(text) || Number(text) < 1) {
        fieldError(form, field, t('e.stock'));
        return null;
      }
      return Number(text);
    };
    const quantity = whole(f.quantity.input, 'quantity');
    if (quantity === null) return;
    const limit = whole(f.limit.input, 'per_buyer_limit');
    if (limit === null) return;
    const body = {
      product_id: f.select.value,
      price_fen: priceFen,
      quantity,
      per_buyer_limit: limit,
      hold_minutes: f.hold.value,
      buyers: f.buyers.value,
    };
    const startsAt = f.start.value > 0 ? serverNow() + f.start.value * 60000 : null;
    if (startsAt) body.starts_at = new Date(startsAt).toISOString();
    if (f.length.value > 0) body.ends_at = new Date((startsAt || serverNow()) + f.length.value * 60000).toISOString();
    let offer;
    try {
      offer = await post(`/broadcasts/${encodeURIComponent(this.broadcast.id)}/offers`, body);
    } catch (problem) {
      showProblem(form, problem);
      return;
    }
    this.offers.set(offer.id, offer);
    this.closeForm();
    this.render();
    this.pin(offer.id, true);
    toast(t('sell.started'));
    this.loadProducts();
  }
}

