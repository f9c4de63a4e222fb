// The pinned offer cards on the viewer page: live price, stock (what is
// left, what sold), the countdown to opening (while upcoming) and to the
// end, the presale ship date, whether only signed-in mobile accounts may
// buy, a quantity stepper and the big buy button.
// Above them, the sale ticker ("a buyer from 太原 just bought 2 bags").
//
// The cards follow the live channel: the snapshot (or room_state after a
// resume) carries every pinned offer whole; offer_pinned / offer_unpinned /
// offer_updated change them one at a time.

import { t, formatDate, formatTime, yuan, amount } from '../i18n.js';
import { el, icon } from '../dom.js';
import { msUntil, clockText } from '../clock.js';
import { saleWords } from './chat.js';
import { smallPhoto } from '../photo.js';
import './words.js';

const TICKER_MS = 4500;

export class OfferCards {
  /**
   * @param {HTMLElement} slot
   * @param {import('./channel.js').LiveChannel} channel
   * @param {{ onBuy: (card: object, quantity: number) => Promise<void>,
   *           productOf?: (offerId: string) => ({photo?: string, price_fen: number}|null) }} options
   *   `productOf` names the product an offer sells, for its photo and
   *   list price (the live card itself carries neither).
   */
  constructor(slot, channel, { onBuy, productOf = () => null }) {
    this.slot = slot;
    this.channel = channel;
    this.onBuy = onBuy;
    this.productOf = productOf;
    this.cards = new Map(); // offer id -> { data, node, parts, qty }
    this.order = [];
    this.ticker = el('p', { class: 'sale-ticker', hidden: true, role: 'status' });
    this.list = el('div', { class: 'offer-list' });
    this.mine = el('div', { class: 'my-orders', hidden: true });
    this.tickerQueue = [];
    this.tickerBusy = false;
    this.holding = new Set();
    this.banned = false;
    slot.replaceChildren(this.ticker, this.list, this.mine);
    this.listen();
    this.timer = setInterval(() => this.tick(), 1000);
    document.addEventListener('langchange', () => this.renderAll());
  }

  listen() {
    const c = this.channel;
    c.on('snapshot', (m) => this.replace(m.state ? m.state.offers : []));
    c.on('room_state', (m) => this.replace(m.state ? m.state.offers : []));
    c.on('offer_pinned', (m) => this.upsert(m.offer));
    c.on('offer_updated', (m) => this.upsert(m.offer, { onlyKnown: true }));
    c.on('offer_unpinned', (m) => this.drop(m.offer));
    c.on('sale', (m) => this.showSale(m));
    // Signed in or not decides the words on accounts-only offers.
    c.on('hello', () => this.renderAll());
    c.on('status', ({ status }) => {
      // Banned from the shop: the room is gone for this phone, and so is buying.
      if (status === 'banned') {
        this.banned = true;
        this.renderAll();
      }
    });
  }

  /** Marks an offer as having a hold of this phone's waiting for checkout. */
  setHolding(offerId, holding) {
    if (holding) this.holding.add(offerId);
    else this.holding.delete(offerId);
    const card = this.cards.get(offerId);
    if (card) this.render(card);
  }

  replace(offers) {
    const keep = new Set((offers || []).map((o) => o.offer));
    for (const id of [...this.cards.keys()]) if (!keep.has(id)) this.drop(id);
    for (const o of offers || []) this.upsert(o);
  }

  upsert(data, { onlyKnown = false } = {}) {
    if (!data || !data.offer) return;
    let card = this.cards.get(data.offer);
    if (!card) {
      if (onlyKnown) return;
      card = this.build(data);
      this.cards.set(data.offer, card);
      this.list.append(card.node);
    }
    card.data = data;
    this.render(card);
    this.slot.hidden = false;
  }

  drop(id) {
    const card = this.cards.get(id);
    if (!card) return;
    card.node.remove();
    this.cards.delete(id);
    this.slot.hidden = this.cards.size === 0 && this.mine.hidden && this.ticker.hidden;
  }

  /** Whether this phone is signed in with an account (not a guest). */
  get signedIn() {
    const you = this.channel.hello && this.channel.hello.you;
    return Boolean(you && you.signed_in);
  }

  /** The card with this id, as last heard from the room. */
  get(id) {
    const card = this.cards.get(id);
    return card ? card.data : null;
  }

  build(data) {
    const p = {};
    p.badge = el('span', { class: 'offer-badge' }, icon('bag'), el('span'));
    p.timer = el('span', { class: 'offer-timer', hidden: true }, icon('clock'), el('span'));
    p.title = el('h2', { class: 'offer-title' });
    p.photo = el('span', { class: 'offer-photo', 'aria-hidden': 'true' }, icon('field'));
    p.price = el('strong');
    p.per = el('span', { class: 'per' });
    p.list = el('s', { class: 'list-price', hidden: true });
    p.tags = el('p', { class: 'offer-tags' });
    p.bar = el('progress', { class: 'stock-bar', max: '1', value: '0' });
    p.left = el('span', { class: 'stock-left' });
    p.sold = el('span', { class: 'stock-sold' });
    p.minus = el('button', { type: 'button', class: 'stepper-btn', 'aria-label': '-1', text: '−' });
    p.plus = el('button', { type: 'button', class: 'stepper-btn', 'aria-label': '+1', text: '+' });
    p.qty = el('output', { class: 'qty', 'aria-live': 'polite' });
    p.qtyLabel = el('span', { class: 'qty-label' });
    p.stepper = el('div', { class: 'qty-stepper' }, p.minus, p.qty, p.plus);
    p.buy = el('button', { type: 'button', class: 'btn btn-live btn-big btn-buy' }, icon('bag'), el('span'));
    p.note = el('p', { class: 'offer-note', role: 'alert', hidden: true });
    const node = el('article', { class: 'offer card', data: { offer: data.offer } },
      p.photo,
      el('div', { class: 'offer-head' }, p.badge, p.timer),
      p.title,
      el('div', { class: 'offer-row' }, el('p', { class: 'offer-price' }, p.price, p.per, p.list), p.tags),
      el('div', { class: 'offer-stock' }, p.bar, el('p', { class: 'stock-words' }, p.sold, p.left)),
      el('div', { class: 'offer-buy' }, el('div', { class: 'qty-box' }, p.qtyLabel, p.stepper), p.buy),
      p.note);
    const card = { data, node, parts: p, qty: 1, busy: false };
    p.minus.addEventListener('click', () => { card.qty = Math.max(1, card.qty - 1); this.render(card); });
    p.plus.addEventListener('click', () => { card.qty = Math.min(this.maxQty(card.data), card.qty + 1); this.render(card); });
    p.buy.addEventListener('click', () => this.buy(card));
    return card;
  }

  maxQty(d) {
    const limit = d.max_per_buyer || 99;
    return Math.max(1, Math.min(limit, d.available || 1, 99));
  }

  /** Shows a problem (or a hint) under the card's button. */
  note(id, text) {
    const card = this.cards.get(id);
    if (!card) return;
    card.parts.note.textContent = text || '';
    card.parts.note.hidden = !text;
    clearTimeout(card.noteTimer);
    if (text) card.noteTimer = setTimeout(() => { card.parts.note.hidden = true; }, 8000);
  }

  async buy(card) {
    if (card.busy || this.banned) return;
    if (card.data.state !== 'open' && !this.holding.has(card.data.offer)) return;
    card.busy = true;
    this.render(card);
    this.note(card.data.offer, '');
    try {
      await this.onBuy(card.data, card.qty);
    } finally {
      card.busy = false;
      this.render(card);
    }
  }

  /** State words and countdowns; called on every change and every second. */
  render(card) {
    const d = card.data;
    const p = card.parts;
    card.node.dataset.state = d.state;
    p.badge.lastChild.textContent = t('offer.live_price');
    p.title.textContent = d.title;
    p.price.textContent = yuan(d.price_fen);
    p.per.textContent = `/${d.unit}`;
    this.renderProduct(card);
    const tags = [];
    if (d.ships_on) tags.push(el('span', { class: 'tag tag-presale', text: t('offer.presale', { date: formatDate(d.ships_on) }) }));
    if (d.max_per_buyer) tags.push(el('span', { class: 'tag', text: t('offer.limit', { n: d.max_per_buyer, amount: amount(d.max_per_buyer, d.unit) }) }));
    const accountsOnly = d.buyers === 'accounts_only';
    if (accountsOnly) tags.push(el('span', { class: 'tag tag-account', text: t('offer.accounts_only') }));
    p.tags.replaceChildren(...tags);
    const total = d.available + d.sold;
    p.bar.max = Math.max(1, total);
    p.bar.value = d.sold;
    p.sold.textContent = t('offer.sold', { n: d.sold, amount: amount(d.sold, d.unit) });
    p.left.textContent = d.state === 'sold_out' ? t('offer.sold_out') : t('offer.left', { n: d.available, amount: amount(d.available, d.unit) });
    p.left.classList.toggle('low', d.available > 0 && d.available <= Math.max(3, total / 10));

    card.qty = Math.min(card.qty, this.maxQty(d));
    p.qty.textContent = String(card.qty);
    p.qtyLabel.textContent = t('offer.qty');
    p.minus.disabled = card.qty <= 1;
    p.plus.disabled = card.qty >= this.maxQty(d);
    const holding = this.holding.has(d.offer);
    const open = d.state === 'open' && !this.banned;
    p.stepper.parentElement.hidden = !open || holding;

    let words;
    if (this.banned) words = t('offer.banned');
    else if (card.busy) words = t('offer.buying');
    else if (holding) words = t('offer.continue');
    else if (open && accountsOnly && !this.signedIn) words = t('offer.sign_in_to_buy');
    else if (open) words = card.qty > 1 ? t('offer.buy_n', { n: card.qty, amount: amount(card.qty, d.unit), total: yuan(d.price_fen * card.qty) }) : t('offer.buy');
    else if (d.state === 'upcoming') words = t('offer.upcoming');
    else if (d.state === 'sold_out') words = t('offer.sold_out');
    else words = t('offer.ended');
    p.buy.lastChild.textContent = words;
    p.buy.disabled = this.banned || card.busy || !(open || holding);
    p.buy.classList.toggle('btn-continue', holding && !this.banned);
    if (d.state === 'sold_out' && p.note.hidden) {
      p.note.textContent = t('offer.sold_out_hint');
      p.note.hidden = false;
    } else if (d.state !== 'sold_out' && p.note.textContent === t('offer.sold_out_hint')) {
      p.note.hidden = true;
    }
    this.renderTimer(card);
  }

  /** The product's photo and, when the live price is lower, its list price struck through. */
  renderProduct(card) {
    const p = card.parts;
    const product = this.productOf(card.data.offer);
    const photo = product && smallPhoto(product.photo);
    if (photo && p.photo.dataset.src !== photo) {
      p.photo.dataset.src = photo;
      p.photo.replaceChildren(el('img', { src: photo, alt: '', decoding: 'async' }));
    }
    const list = product && product.price_fen > card.data.price_fen ? product.price_fen : 0;
    p.list.hidden = !list;
    if (list) {
      p.list.textContent = yuan(list);
      p.list.setAttribute('aria-label', t('offer.list_price', { price: yuan(list) }));
    }
  }

  /** The page learned more about products: fill in photos and list prices. */
  refreshProducts() {
    for (const card of this.cards.values()) this.renderProduct(card);
  }

  renderTimer(card) {
    const d = card.data;
    const p = card.parts;
    let text = '';
    if (d.state === 'upcoming' && d.starts_at) {
      const left = msUntil(d.starts_at);
      text = left > 3600000 ? t('offer.starts_at', { time: formatTime(d.starts_at) }) : t('offer.starts_in', { t: clockText(left) });
      if (left <= 0) text = t('offer.upcoming');
    } else if (d.state === 'open' && d.ends_at) {
      text = t('offer.ends_in', { t: clockText(msUntil(d.ends_at)) });
    }
    p.timer.hidden = !text;
    p.timer.lastChild.textContent = text;
    p.timer.classList.toggle('soon', d.state === 'open' && msUntil(d.ends_at) < 60000);
  }

  renderAll() {
    for (const card of this.cards.values()) this.render(card);
    this.renderMine();
    if (!this.ticker.hidden && this.tickerSale) this.ticker.lastChild.textContent = saleWords(this.tickerSale);
  }

  tick() {
    for (const card of this.cards.values()) {
      if (card.data.starts_at || card.data.ends_at) this.renderTimer(card);
    }
  }

  showSale(sale) {
    this.tickerQueue.push(sale);
    if (this.tickerQueue.length > 5) this.tickerQueue.shift();
    if (!this.tickerBusy) this.nextSale();
  }

  nextSale() {
    const sale = this.tickerQueue.shift();
    if (!sale) {
      this.tickerBusy = false;
      this.ticker.hidden = true;
      return;
    }
    this.tickerBusy = true;
    this.tickerSale = sale;
    this.ticker.replaceChildren(icon('bag'), el('span', { text: saleWords(sale) }));
    this.ticker.hidden = false;
    this.slot.hidden = false;
    // Restart the entrance animation for every sale.
    this.ticker.classList.remove('pop');
    void this.ticker.offsetWidth;
    this.ticker.classList.add('pop');
    setTimeout(() => this.nextSale(), TICKER_MS);
  }

  /** Orders placed from this phone in this broadcast, to find them again. */
  setMine(orders) {
    this.myOrders = orders;
    this.renderMine();
  }

  renderMine() {
    // Links come from this phone's storage: only our own http(s) links.
    const orders = (this.myOrders || []).filter((o) => /^https?:\/\//.test(String(o.url)));
    this.mine.hidden = orders.length === 0;
    if (!orders.length) return;
    this.slot.hidden = false;
    this.mine.replaceChildren(...orders.map((o) => el('a', { class: 'my-order', href: o.url, target: '_blank', rel: 'noopener' },
      icon('list'), el('span', { text: t('my.order', { title: o.title, n: o.quantity, amount: amount(o.quantity, o.unit) }) }), icon('next'))));
  }
}
