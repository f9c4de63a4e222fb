// The studio's side of the live channel, in the go-live view: the farmer
// is in the room as its owner, sees the viewer count and the chat (with
// the moderator tools), sells from the offer desk and hears each sale.

import { $ } from '../dom.js';
import { t } from '../i18n.js';
import { LiveChannel } from '../live/channel.js';
import { ChatPanel } from '../live/chat.js';
import { ModTools } from '../live/moderation.js';
import { OfferDesk } from './offers.js';
import { LiveOrders } from './liveorders.js';
import { countNewOrders, selectPanel } from './cockpit.js';
import './words.js';

/**
 * Starts the panels for `broadcast`; returns a function that stops them.
 * `onState` hears the broadcast's state as the room reports it.
 */
export function mountLive(broadcast, shopId, { onState }) {
  const over = broadcast.state === 'ended';
  const seeOrders = () => selectPanel('orders');
  if (over) {
    // The results stay readable; nothing to connect to any more.
    const desk = new OfferDesk($('studio-offers-slot'), null, { broadcast, shopId, seeOrders });
    const orders = new LiveOrders($('studio-orders-slot'), null, { broadcast, shopId, onNew: () => {} });
    $('studio-chat-slot').hidden = true;
    $('studio-viewers').hidden = true;
    selectPanel('sell');
    return () => { desk.destroy(); orders.destroy(); };
  }
  const channel = new LiveChannel(broadcast.id);
  // The cockpit's header shows the viewer count already.
  const chat = new ChatPanel($('studio-chat-slot'), channel, { viewers: false });
  // The log names pinned offers by their titles, which the desk knows.
  const mod = new ModTools(chat, channel, { shopId, titleOf: (id) => desk.offers.get(id)?.title });
  const desk = new OfferDesk($('studio-offers-slot'), channel, { broadcast, shopId, seeOrders });
  const orders = new LiveOrders($('studio-orders-slot'), channel, { broadcast, shopId, onNew: countNewOrders });
  let viewers = null;
  let state = broadcast.state;
  // "X 人在看" while watched; nothing on an empty or ended room.
  const showViewers = (count) => {
    if (typeof count === 'number') viewers = count;
    const shown = state !== 'ended' && viewers > 0;
    $('studio-viewers').hidden = !shown;
    if (shown) $('studio-viewer-count').textContent = t('chat.viewers', { n: viewers.toLocaleString() });
  };
  const onLang = () => showViewers(viewers);
  document.addEventListener('langchange', onLang);
  channel.on('viewers', (m) => showViewers(m.count));
  const fromState = (s) => {
    if (!s) return;
    state = s.broadcast_state;
    showViewers(s.viewers.count);
    onState(s.broadcast_state);
  };
  channel.on('snapshot', (m) => fromState(m.state));
  channel.on('room_state', (m) => fromState(m.state));
  channel.on('broadcast_state', (m) => { state = m.state; showViewers(); onState(m.state); });
  channel.start();
  return () => {
    channel.stop();
    chat.destroy();
    mod.destroy();
    desk.destroy();
    orders.destroy();
    document.removeEventListener('langchange', onLang);
    $('studio-viewers').hidden = true;
  };
}
