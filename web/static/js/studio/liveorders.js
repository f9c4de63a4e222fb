// This broadcast's orders, in the live cockpit: the farmer sees each new
// order arrive (a short sound, a vibration and a count on the tab, not a
// toast that is gone in seconds) and can mark it paid or ship it without
// leaving the stream.

import { el, icon } from '../dom.js';
import { get } from '../api.js';
import { t, yuan } from '../i18n.js';
import { orderCard } from './orders.js';
import './words.js';

/** Two short tones, quiet enough for a phone held in the field. */
function chime() {
  try {
    const audio = chime.context || (chime.context = new AudioContext());
    if (audio.state === 'suspended') audio.resume();
    for (const [at, hz] of [[0, 880], [0.16, 1175]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, audio.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(0.25, audio.currentTime + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + at + 0.14);
      osc.connect(gain).connect(audio.destination);
      osc.start(audio.currentTime + at);
      osc.stop(audio.currentTime + at + 0.15);
    }
  } catch (_) { /* no sound on this phone: the badge still counts */ }
  if (navigator.vibrate) navigator.vibrate([120, 80, 120]);
}

/** Browsers allow sound only after a tap: open the audio on the first one. */
export function unlockSound() {
  if (chime.context || typeof AudioContext === 'undefined') return;
  try { chime.context = new AudioContext(); } catch (_) { /* stays silent */ }
}

export class LiveOrders {
  /**
   * @param {HTMLElement} slot
   * @param {import('../live/channel.js').LiveChannel|null} channel  null once the broadcast ended
   * @param {{ broadcast: object, shopId: string, onNew: (n: number) => void }} options
   *   `onNew` hears how many orders arrived since the page loaded them first.
   */
  constructor(slot, channel, { broadcast, shopId, onNew }) {
    this.slot = slot;
    this.broadcast = broadcast;
    this.shopId = shopId;
    this.onNew = onNew;
    this.orders = [];
    this.known = null; // ids seen so far; null until the first load
    this.fresh = new Set(); // arrived while this page was open
    this.onLang = () => this.render();
    document.addEventListener('langchange', this.onLang);
    if (channel) channel.on('sale', () => this.load());
    this.load();
  }

  destroy() {
    document.removeEventListener('langchange', this.onLang);
    this.slot.replaceChildren();
  }

  async load() {
    let list;
    try {
      list = await get(`/shops/${encodeURIComponent(this.shopId)}/orders?broadcast_id=${encodeURIComponent(this.broadcast.id)}`);
    } catch (_) {
      return; // keep what we showed; the next sale loads again
    }
    const arrived = this.known ? list.filter((o) => !this.known.has(o.id)) : [];
    this.known = new Set(list.map((o) => o.id));
    arrived.forEach((o) => this.fresh.add(o.id));
    this.orders = list;
    this.render();
    if (arrived.length) {
      chime();
      this.onNew(arrived.length);
    }
  }

  update(order) {
    this.orders = this.orders.map((o) => (o.id === order.id ? order : o));
    this.render();
  }

  render() {
    const counted = this.orders.filter((o) => o.state !== 'cancelled');
    const total = counted.reduce((sum, o) => sum + o.total_fen, 0);
    const cards = this.orders.map((o) => {
      const card = orderCard(o, (updated) => this.update(updated));
      if (this.fresh.has(o.id)) {
        card.classList.add('order-new');
        card.querySelector('.order-top').append(el('span', { class: 'tag tag-new', text: t('lo.new') }));
      }
      return card;
    });
    this.slot.replaceChildren(
      el('div', { class: 'section-head' },
        el('h2', { class: 'section-title' }, icon('box'), el('span', { text: t('lo.title') })),
        el('a', { class: 'btn btn-quiet btn-small', href: '/studio/orders', 'data-link': true }, icon('list'), el('span', { text: t('lo.all') }))),
      this.orders.length
        ? el('p', { class: 'desk-orders' }, icon('box'), el('span', { text: t('sell.orders', { n: counted.length, total: yuan(total) }) }))
        : el('p', { class: 'empty', text: t('lo.none') }),
      el('ul', { class: 'order-list live-order-list' }, ...cards));
  }
}
