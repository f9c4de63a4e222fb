// The studio's side of the live channel, in the go-live view: the farmer
// is in the room as its owner, sees the viewer count and the chat (with
// the moderator tools), sells from the offer desk and hears each sale.

import { $ } from '../dom.js';
import { t } from '../i18n.js';
import { LiveChannel } from '../live/channel.js';
import { ChatPanel } from '../live/chat.js';
import { ModTools } from '../live/moderation.js';
import { OfferDesk } from './offers.js';
import './words.js';

/**
 * Starts the panels for `broadcast`; returns a function that stops them.
 * `onState` hears the broadcast's state as the room reports it.
 */
export function mountLive(broadcast, shopId, { onState }) {
  const over = broadcast.state === 'ended';
  if (over) {
    // The results stay readable; nothing to connect to any more.
    const desk = new OfferDesk($('studio-offers-slot'), null, { broadcast, shopId });
    $('studio-chat-slot').hidden = true;
    $('studio-viewers').hidden = true;
    return () => desk.destroy();
  }
  const channel = new LiveChannel(broadcast.id);
  const chat = new ChatPanel($('studio-chat-slot'), channel);
  const mod = new ModTools(chat, channel, { shopId });
  const desk = new OfferDesk($('studio-offers-slot'), channel, { broadcast, shopId });
  let viewers = null;
  const showViewers = (count) => {
    if (typeof count !== 'number') return;
    viewers = count;
    $('studio-viewers').hidden = false;
    $('studio-viewer-count').textContent = t('chat.viewers', { n: count.toLocaleString() });
  };
  const onLang = () => showViewers(viewers);
  document.addEventListener('langchange', onLang);
  channel.on('viewers', (m) => showViewers(m.count));
  const fromState = (s) => {
    if (!s) return;
    showViewers(s.viewers.count);
    onState(s.broadcast_state);
  };
  channel.on('snapshot', (m) => fromState(m.state));
  channel.on('room_state', (m) => fromState(m.state));
  channel.on('broadcast_state', (m) => onState(m.state));
  channel.start();
  return () => {
    channel.stop();
    chat.destroy();
    mod.destroy();
    desk.destroy();
    document.removeEventListener('langchange', onLang);
    $('studio-viewers').hidden = true;
  };
}
