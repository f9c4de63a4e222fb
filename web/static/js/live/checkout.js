// Buying: the tap on "buy now", the reservation's countdown, the short
// delivery form, and the confirmation with the buyer's private order link.
//
// A tap reserves over HTTP (POST /offers/{id}/reservations) with an
// Idempotency-Key made for that tap: a retry after a dropped connection
// reserves once. A visitor without a nickname picks one first (the API
// needs a guest or an account to hold stock for). The reservation holds
// the units until `expires_at`; the sheet counts down, and when time runs
// out (or the live channel says `reservation_expired`) it says so and
// offers to try again. An offer for signed-in buyers only (`buyers:
// accounts_only`) asks a guest to sign in (or sign up) with their mobile
// number first, in a sheet on this page.

import { t, has, yuan, amount, orderNumber } from '../i18n.js';
import { $, el, toast, sleep } from '../dom.js';
import { post, del } from '../api.js';
import { showPaymentHow } from '../payment.js';
import { showProblem, clearErrors, busy, describe, requireFilled } from '../forms.js';
import { noteServerTime, msUntil, clockText } from '../clock.js';
import { showSheet, openSheet } from '../sheet.js';
import { copyText } from '../share.js';
import { nonce } from './channel.js';
import { becomeGuest } from './chat.js';
import './words.js';

const ORDERS_KEY = 'fieldcast.orders';

/**
 * Words for a failed "buy now". The numbers come from the problem's
 * `params` where the server sends them, else from the live card.
 */
export function buyProblemWords(problem, card, quantity) {
  const params = problem.params || {};
  switch (problem.code) {
    case 'insufficient_stock':
    case 'sold_out': {
      // Older servers say sold_out also when fewer are left than asked for.
      const left = params.available ?? (card ? card.available : 0);
      if (left > 0 && left < quantity) return t('buy.insufficient_stock', { n: left });
      return t('buy.sold_out');
    }
    case 'limit_reached':
    case 'over_limit': {
      const limit = params.limit ?? (card && card.max_per_buyer);
      return limit ? t('buy.over_limit', { n: limit }) : t('buy.over_limit_plain');
    }
    case 'account_required':
      return t('buy.account_required');
    case 'not_started':
    case 'offer_ended':
    case 'unavailable':
    case 'network':
      return t(`buy.${problem.code}`);
    default:
      return has(`e.${problem.code}`) ? describe(problem) : t('buy.generic');
  }
}

export class Checkout {
  /**
   * @param {import('./channel.js').LiveChannel} channel
   * @param {{ broadcastId: string, cards: import('./offer.js').OfferCards }} options
   */
  constructor(channel, { broadcastId, cards }) {
    this.channel = channel;
    this.broadcastId = broadcastId;
    this.cards = cards;
    this.current = null; // { reservation, card }
    this.hide = null;
    this.timer = 0;
    this.backdrop = $('checkout');
    this.form = $('co-form');
    this.bind();
    cards.setMine(this.myOrders());
    channel.on('reservation_expired', (m) => {
      if (this.current && this.current.reservation.id === m.reservation) this.expired();
    });
  }

  bind() {
    $('co-close').addEventListener('click', () => this.close());
    $('co-done-close').addEventListener('click', () => this.close());
    $('co-expired-close').addEventListener('click', () => this.close());
    $('co-again').addEventListener('click', () => {
      const card = this.current && this.cards.get(this.current.card.offer);
      const quantity = this.current ? this.current.reservation.quantity : 1;
      this.close();
      if (card && card.state === 'open') this.buy(card, quantity);
    });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      busy(this.form, () => this.submit());
    });
    $('co-release').addEventListener('click', () => this.release());
    $('co-copy').addEventListener('click', async () => {
      if (await copyText($('co-link').textContent)) toast(t('common.copied'));
    });
    document.addEventListener('langchange', () => { if (this.current) this.renderSummary(); });
  }

  /** "Buy now" on a card: reserve, then open the form. */
  async buy(card, quantity) {
    // A hold still running for this offer: go back to it, do not take more.
    if (this.current && !this.current.order && !this.current.lapsed && this.current.card.offer === card.offer
        && msUntil(this.current.reservation.expires_at) > 0) {
      this.show('form');
      return;
    }
    const you = this.channel.hello && this.channel.hello.you;
    if (card.buyers === 'accounts_only') {
      if (you && !you.signed_in && !(await this.askSignIn())) return;
    } else if (you && you.anonymous && !(await this.askNickname())) return;
    const key = nonce('buy');
    let askedSignIn = false;
    for (let attempt = 0; ; attempt++) {
      try {
        const reservation = await post(`/offers/${encodeURIComponent(card.offer)}/reservations`, { quantity }, { headers: { 'Idempotency-Key': key } });
        noteServerTime(reservation.created_at);
        this.open(reservation, card);
        return;
      } catch (problem) {
        if (problem.status === 401 && attempt === 0) {
          if (!(await (card.buyers === 'accounts_only' ? this.askSignIn() : this.askNickname()))) return;
          continue;
        }
        // The page did not know yet (an old card): sign in, then once more.
        if (problem.code === 'account_required' && !askedSignIn) {
          askedSignIn = true;
          if (!(await this.askSignIn())) return;
          continue;
        }
        // Lost on the way: the same key cannot reserve twice, so ask again.
        if ((problem.code === 'network' || problem.status === 503) && attempt < 2) {
          await sleep(700 * (attempt + 1));
          continue;
        }
        const words = buyProblemWords(problem, this.cards.get(card.offer) || card, quantity);
        this.cards.note(card.offer, words);
        toast(words, 4000);
        return;
      }
    }
  }

  /** Asks for a nickname; resolves true once this phone is a guest. */
  askNickname() {
    return new Promise((resolve) => {
      let ok = false;
      const input = el('input', { name: 'nickname', type: 'text', maxlength: '24', autocomplete: 'nickname', required: true, placeholder: t('chat.nickname_ph') });
      const form = el('form', { class: 'form', novalidate: true },
        el('p', { class: 'muted', text: t('nick.text') }),
        el('label', { class: 'field' }, el('span', { class: 'field-label', text: t('chat.nickname') }), input,
          el('span', { class: 'field-error', 'data-error-for': 'nickname' })),
        el('p', { class: 'form-error', role: 'alert', hidden: true }),
        el('button', { type: 'submit', class: 'btn btn-live btn-block btn-big', text: t('nick.go') }));
      const sheet = openSheet({ title: t('nick.title'), content: form, onClose: () => resolve(ok) });
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        busy(form, async () => {
          clearErrors(form);
          const nickname = input.value.trim();
          if (!nickname) {
            showProblem(form, { code: 'validation_failed', errors: [{ field: 'nickname', code: 'required' }] });
            return;
          }
          try {
            await becomeGuest(nickname, this.channel);
            ok = true;
            sheet.close();
          } catch (problem) {
            showProblem(form, problem);
          }
        });
      });
      input.focus();
    });
  }

  /**
   * Asks a guest to sign in with their mobile number (or sign up, in the
   * same sheet); resolves true once this phone is signed in. The live
   * channel reconnects so the room knows who this is now.
   */
  askSignIn() {
    return new Promise((resolve) => {
      let ok = false;
      let signUp = false;
      const mobile = el('input', { name: 'mobile', type: 'tel', inputmode: 'tel', autocomplete: 'tel', maxlength: '20', required: true });
      const password = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
      const name = el('input', { name: 'display_name', type: 'text', maxlength: '24', autocomplete: 'nickname' });
      const nameField = el('label', { class: 'field', hidden: true }, el('span', { class: 'field-label', text: t('signin.name') }), name,
        el('span', { class: 'field-error', 'data-error-for': 'display_name' }));
      const submitText = el('span', { text: t('auth.signin') });
      const toggle = el('button', { type: 'button', class: 'btn btn-quiet btn-block', text: t('signin.to_signup') });
      const form = el('form', { class: 'form', novalidate: true },
        el('p', { class: 'muted', text: t('signin.text') }),
        el('label', { class: 'field' }, el('span', { class: 'field-label', text: t('signin.mobile') }), mobile,
          el('span', { class: 'field-error', 'data-error-for': 'mobile' })),
        el('label', { class: 'field' }, el('span', { class: 'field-label', text: t('signin.password') }), password,
          el('span', { class: 'field-error', 'data-error-for': 'password' })),
        nameField,
        el('p', { class: 'form-error', role: 'alert', hidden: true }),
        el('button', { type: 'submit', class: 'btn btn-live btn-block btn-big' }, submitText),
        toggle);
      toggle.addEventListener('click', () => {
        signUp = !signUp;
        nameField.hidden = !signUp;
        password.autocomplete = signUp ? 'new-password' : 'current-password';
        submitText.textContent = t(signUp ? 'auth.signup_go' : 'auth.signin');
        toggle.textContent = t(signUp ? 'signin.to_signin' : 'signin.to_signup');
        clearErrors(form);
      });
      const sheet = openSheet({ title: t('signin.title'), content: form, onClose: () => resolve(ok) });
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        busy(form, async () => {
          clearErrors(form);
          try {
            if (signUp) {
              await post('/accounts', { mobile: mobile.value.trim(), password: password.value, display_name: name.value.trim() });
            } else {
              await post('/session', { mobile: mobile.value.trim(), password: password.value });
            }
            ok = true;
            this.channel.reconnect();
            sheet.close();
          } catch (problem) {
            showProblem(form, problem);
          }
        });
      });
      mobile.focus();
    });
  }

  /** Tells the card whether a hold of ours is waiting for checkout. */
  holding(on) {
    if (this.current) this.cards.setHolding(this.current.card.offer, on);
  }

  open(reservation, card) {
    this.current = { reservation, card: this.cards.get(card.offer) || card };
    this.holding(true);
    clearErrors(this.form);
    this.renderSummary();
    this.show('form');
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 500);
    this.tick();
    const first = this.form.elements.name.value ? this.form.elements.address : this.form.elements.name;
    if (first && !first.value) first.focus({ preventScroll: true });
  }

  renderSummary() {
    const { reservation, card } = this.current;
    const item = `${card.title} × ${amount(reservation.quantity, card.unit)}`;
    $('co-item').textContent = item;
    $('co-total').textContent = yuan(reservation.total_fen);
    $('co-submit-text').textContent = t('co.submit', { total: yuan(reservation.total_fen) });
    $('co-done-item').textContent = item;
    $('co-done-total').textContent = yuan(reservation.total_fen);
    if (this.current.order) this.renderPayNote(this.current.order);
    this.tick();
  }

  tick() {
    if (!this.current || this.current.order) return;
    const left = msUntil(this.current.reservation.expires_at);
    $('co-hold-text').textContent = t('co.held', { t: clockText(left) });
    $('co-hold').classList.toggle('soon', left < 60000);
    if (left <= 0) this.expired();
  }

  /** Which part of the sheet shows: the form, the confirmation or "time is up". */
  show(view) {
    $('co-form-view').hidden = view !== 'form';
    $('co-done-view').hidden = view !== 'done';
    $('co-expired-view').hidden = view !== 'expired';
    // The confirmation and "time is up" carry their own big headings.
    $('co-title').textContent = view === 'form' ? t('co.title') : '';
    if (!this.hide) this.hide = showSheet(this.backdrop, { onClose: () => { this.hide = null; } });
    this.backdrop.querySelector('.sheet').scrollTop = 0;
  }

  expired() {
    clearInterval(this.timer);
    if (!this.current || this.current.order) return;
    // Over before its time too (let go in another tab): never reopened.
    this.current.lapsed = true;
    this.holding(false);
    this.show('expired');
  }

  close() {
    if (this.hide) this.hide();
    this.hide = null;
    // A finished or lapsed purchase is done with; a running hold stays, so
    // tapping buy again comes back to it.
    if (this.current && (this.current.order || this.current.lapsed || msUntil(this.current.reservation.expires_at) <= 0)) {
      clearInterval(this.timer);
      this.current = null;
    }
  }

  async submit() {
    if (!this.current) return;
    clearErrors(this.form);
    if (!requireFilled(this.form, ['name', 'mobile', 'address'])) return;
    const f = this.form.elements;
    const body = {
      name: f.name.value.trim(),
      mobile: f.mobile.value.trim(),
      address: f.address.value.trim(),
      payment_method: f.payment_method.value,
    };
    const { reservation } = this.current;
    try {
      const order = await post(`/reservations/${encodeURIComponent(reservation.id)}/order`, body);
      this.done(order);
    } catch (problem) {
      if (problem.code === 'reservation_expired' || problem.code === 'reservation_cancelled') {
        this.expired();
        return;
      }
      showProblem(this.form, problem);
    }
  }

  done(order) {
    clearInterval(this.timer);
    this.holding(false);
    this.current.order = order;
    $('co-link').textContent = order.private_url;
    $('co-open').href = order.private_url;
    this.renderPayNote(order);
    this.show('done');
    this.remember(order);
  }

  renderPayNote(order) {
    const ref = orderNumber(order);
    $('co-pay-note').textContent = order.payment_method === 'cash_on_delivery'
      ? t('co.pay_cod', { total: yuan(order.total_fen) })
      : t('co.pay_transfer', { total: yuan(order.total_fen), ref });
    showPaymentHow($('co-pay-how'), order);
  }

  async release() {
    if (!this.current) return;
    const { reservation } = this.current;
    try {
      await del(`/reservations/${encodeURIComponent(reservation.id)}`);
      toast(t('co.released'));
    } catch (_) { /* it runs out by itself anyway */ }
    clearInterval(this.timer);
    this.holding(false);
    this.current = null;
    if (this.hide) this.hide();
    this.hide = null;
  }

  /** Orders from this phone, per broadcast, so the links are not lost. */
  myOrders() {
    try {
      const all = JSON.parse(localStorage.getItem(ORDERS_KEY) || '[]');
      return Array.isArray(all) ? all.filter((o) => o.broadcast === this.broadcastId) : [];
    } catch (_) {
      return [];
    }
  }

  remember(order) {
    const entry = { broadcast: order.broadcast_id, url: order.private_url, title: order.title, quantity: order.quantity, unit: order.unit };
    try {
      const all = JSON.parse(localStorage.getItem(ORDERS_KEY) || '[]');
      const list = (Array.isArray(all) ? all : []).filter((o) => o.url !== entry.url);
      list.unshift(entry);
      localStorage.setItem(ORDERS_KEY, JSON.stringify(list.slice(0, 20)));
    } catch (_) { /* not remembered: the link is on screen */ }
    this.cards.setMine(this.myOrders());
  }
}
