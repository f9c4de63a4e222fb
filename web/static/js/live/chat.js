// The chat panel: recent history, new messages as they come, the pinned
// message, the viewer count, and the composer (or, for a visitor without a
// nickname, the nickname form). Used on the viewer page and in the studio.
//
// Everything people wrote is inserted as text (el(..., {text})), never as
// markup. Refusals of one's own messages (slow mode, blocked word, muted)
// come privately and are shown only here, to the sender.

import { t, has, formatTime, locale, amount } from '../i18n.js';
import { el, icon } from '../dom.js';
import { post } from '../api.js';
import { clearErrors, showProblem } from '../forms.js';
import { serverNow } from '../clock.js';
import { nonce } from './channel.js';
import './words.js';

const KEEP = 200; // messages kept on screen; older ones scroll away for good

/** Words for a refusal code, with its wait in seconds where it has one. */
export function refusalWords(refusal) {
  const key = `r.${refusal.code}`;
  const n = Math.max(1, Math.ceil((refusal.retry_after_ms || 0) / 1000));
  return has(key) ? t(key, { n }) : t('e.generic');
}

/** Turns a sale ticker message into one short line. */
export function saleWords(sale, prefix = 'ticker') {
  const vars = { region: sale.buyer_region || '', n: sale.quantity, amount: amount(sale.quantity, sale.unit) };
  return sale.buyer_region ? t(`${prefix}.sale`, vars) : t(`${prefix}.sale_anon`, vars);
}

export class ChatPanel {
  /**
   * @param {HTMLElement} slot  where the panel goes (emptied)
   * @param {import('./channel.js').LiveChannel} channel
   */
  constructor(slot, channel, { heading = true, viewers = true } = {}) {
    this.slot = slot;
    this.channel = channel;
    this.you = null;
    this.messages = new Map(); // id -> { msg, li }
    this.names = new Map();    // subject -> latest display name seen
    this.pending = new Map();  // nonce -> text being sent
    this.pinned = null;
    this.canModerate = false;
    this.onMessageAction = null; // set by the moderator tools
    this.noticeTimer = 0;
    this.mutedUntil = 0;
    this.showCount = viewers;
    this.build(heading);
    this.listen();
  }

  build(heading) {
    const h = (cls, ...kids) => el('div', { class: cls }, ...kids);
    this.viewersN = el('strong', { text: '–' });
    this.viewersWord = el('span');
    this.viewersBox = el('span', { class: 'viewer-count' }, icon('eye'), this.viewersN, this.viewersWord);
    this.titleWord = el('span', { text: t('chat.title') });
    this.head = el('div', { class: 'chat-head' },
      heading ? el('h2', { class: 'section-title' }, icon('chat'), this.titleWord) : null,
      this.viewersBox);
    this.toolsSlot = h('chat-tools-slot');
    this.slowLine = el('p', { class: 'chat-slow', hidden: true });
    this.pinWho = el('span', { class: 'pin-who' });
    this.pinText = el('span', { class: 'pin-text' });
    this.pinBox = el('div', { class: 'chat-pinned', hidden: true }, icon('pin'),
      el('p', { class: 'pin-body' }, this.pinWho, this.pinText));
    // role="log": screen readers announce new messages, politely, in order.
    this.list = el('ol', { class: 'chat-list', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('chat.title') });
    this.emptyLine = el('p', { class: 'chat-empty', text: t('chat.empty') });
    this.jump = el('button', { type: 'button', class: 'chat-jump', hidden: true }, icon('down'), el('span', { text: t('chat.new') }));
    this.box = h('chat-box', this.list, this.emptyLine, this.jump);
    this.statusLine = el('p', { class: 'chat-status', hidden: true });
    this.noticeLine = el('p', { class: 'chat-notice', role: 'alert', hidden: true });

    this.input = el('input', {
      name: 'text', type: 'text', maxlength: '200', autocomplete: 'off', enterkeyhint: 'send',
      placeholder: t('chat.placeholder'), 'aria-label': t('chat.placeholder'),
    });
    this.sendWord = el('span', { text: t('chat.send') });
    this.compose = el('form', { class: 'chat-compose', hidden: true, novalidate: true },
      this.input, el('button', { type: 'submit', class: 'btn btn-primary chat-send' }, icon('send'), this.sendWord));

    this.nick = el('input', {
      name: 'nickname', type: 'text', maxlength: '24', autocomplete: 'nickname', required: true,
      placeholder: t('chat.nickname_ph'),
    });
    this.joinText = el('p', { class: 'chat-join-text', text: t('chat.join_text') });
    this.joinButton = el('button', { type: 'submit', class: 'btn btn-primary' }, icon('user'), el('span', { text: t('chat.join') }));
    this.join = el('form', { class: 'chat-join', hidden: true, novalidate: true },
      this.joinText,
      el('label', { class: 'field' },
        el('span', { class: 'field-label', text: t('chat.nickname') }),
        el('span', { class: 'join-row' }, this.nick, this.joinButton),
        el('span', { class: 'field-error', 'data-error-for': 'nickname' })),
      el('p', { class: 'form-error', role: 'alert', hidden: true }));
    this.bannedLine = el('p', { class: 'chat-banned', hidden: true }, icon('ban'), el('span', { text: t('chat.banned') }));

    this.slot.replaceChildren(this.head, this.toolsSlot, this.slowLine, this.pinBox, this.box,
      this.statusLine, this.noticeLine, this.compose, this.join, this.bannedLine);
    this.slot.classList.add('chat');
    this.slot.hidden = false;

    this.compose.addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    this.join.addEventListener('submit', (e) => { e.preventDefault(); this.becomeGuest(); });
    this.list.addEventListener('scroll', () => { if (this.atBottom()) this.jump.hidden = true; });
    this.jump.addEventListener('click', () => this.scrollToEnd());
    this.list.addEventListener('click', (e) => {
      const li = e.target.closest && e.target.closest('li.msg[data-id]');
      if (!li || !this.canModerate || !this.onMessageAction) return;
      const item = this.messages.get(li.dataset.id);
      if (item) this.onMessageAction(item.msg);
    });
    this.onLang = () => this.relabel();
    document.addEventListener('langchange', this.onLang);
  }

  /** Leaves the page (the studio switched views); the channel is stopped by its owner. */
  destroy() {
    document.removeEventListener('langchange', this.onLang);
    clearInterval(this.noticeTimer);
    clearTimeout(this.noticeHide);
    clearTimeout(this.statusTimer);
    this.slot.hidden = true;
    this.slot.replaceChildren();
  }

  relabel() {
    this.titleWord.textContent = t('chat.title');
    this.emptyLine.textContent = t('chat.empty');
    this.jump.querySelector('span').textContent = t('chat.new');
    this.input.placeholder = t('chat.placeholder');
    this.input.setAttribute('aria-label', t('chat.placeholder'));
    this.sendWord.textContent = t('chat.send');
    this.nick.placeholder = t('chat.nickname_ph');
    this.joinText.textContent = t('chat.join_text');
    this.joinButton.querySelector('span').textContent = t('chat.join');
    this.join.querySelector('.field-label').textContent = t('chat.nickname');
    this.bannedLine.querySelector('span').textContent = t('chat.banned');
    this.renderViewers(this.viewerCount);
    this.renderSlow(this.slowSeconds || 0);
    for (const { msg, li } of this.messages.values()) {
      const tag = li.querySelector('.role-tag');
      if (tag) tag.textContent = t(`role.${msg.author.role}`);
    }
    this.renderStatus(this.channel.status);
  }

  listen() {
    const c = this.channel;
    c.on('hello', (m) => this.onHello(m));
    c.on('snapshot', (m) => {
      this.replaceHistory(m.history || []);
      this.applyState(m.state);
      if (m.reason === 'lagged' && m.missed > 0) this.notice(t('chat.missed', { n: m.missed }));
    });
    c.on('room_state', (m) => this.applyState(m.state));
    c.on('chat', (m) => this.add(m));
    c.on('message_deleted', (m) => this.remove(m.message));
    c.on('messages_hidden', (m) => {
      for (const [id, item] of [...this.messages]) {
        if (item.msg.author.subject === m.subject) this.remove(id);
      }
    });
    c.on('chat_cleared', () => {
      this.replaceHistory([]);
      this.addSystem(t('chat.cleared'), 'msg-system');
    });
    c.on('pinned_message', (m) => this.renderPinned(m.message));
    c.on('settings', (m) => this.renderSlow(m.slow_mode_seconds));
    c.on('viewers', (m) => this.renderViewers(m.count));
    c.on('sale', (m) => this.addSystem(saleWords(m, 'chat'), 'msg-sale'));
    c.on('accepted', (m) => this.pending.delete(m.nonce));
    c.on('refused', (m) => {
      if (m.command !== 'chat') return;
      const text = m.nonce ? this.pending.get(m.nonce) : null;
      if (m.nonce) this.pending.delete(m.nonce);
      if (text && !this.input.value) this.input.value = text;
      if (m.code === 'nickname_required') this.renderComposer();
      this.notice(refusalWords(m), m.retry_after_ms ? { ms: m.retry_after_ms, code: m.code } : null);
    });
    c.on('muted', (m) => {
      this.mutedUntil = Date.parse(m.until) || 0;
      this.showMuted(m.reason);
    });
    c.on('status', ({ status, reason }) => this.renderStatus(status, reason));
    // The server could not read a frame of ours: a page bug or an old page.
    c.on('error', (m) => { if (has(`ws.${m.code}`)) this.notice(t(`ws.${m.code}`)); });
  }

  onHello(m) {
    this.you = m.you;
    this.canModerate = Boolean(m.you.can_moderate);
    this.slot.classList.toggle('can-moderate', this.canModerate);
    this.renderSlow(m.settings ? m.settings.slow_mode_seconds : 0);
    this.renderComposer();
    this.mutedUntil = m.you.muted_until ? Date.parse(m.you.muted_until) : 0;
    if (this.mutedUntil > serverNow()) this.showMuted('timeout');
    // Own messages are marked "me" once we know who we are.
    for (const { msg, li } of this.messages.values()) li.classList.toggle('msg-mine', msg.author.subject === m.you.subject);
  }

  renderComposer() {
    const you = this.you;
    const banned = this.channel.status === 'banned';
    this.bannedLine.hidden = !banned;
    this.compose.hidden = banned || !you || !you.can_chat;
    this.join.hidden = banned || !you || !you.anonymous;
  }

  /** `reason`: the close reason the server gave, when it closed us. */
  renderStatus(status, reason) {
    clearTimeout(this.statusTimer);
    if (status === 'banned') {
      this.statusLine.hidden = true;
      this.noticeLine.hidden = true;
      clearInterval(this.noticeTimer);
      this.renderComposer();
      this.slot.classList.add('banned');
      return;
    }
    if (status === 'open' || status === 'stopped' || status === 'idle') {
      this.statusLine.hidden = true;
      return;
    }
    // A quick reconnect (after picking a nickname) should not flash a warning.
    this.statusTimer = setTimeout(() => {
      if (this.channel.status === 'open') return;
      const why = reason && has(`close.${reason}`) ? t(`close.${reason}`) : null;
      this.statusLine.textContent = why || (this.you ? t('chat.reconnecting') : t('chat.connecting'));
      this.statusLine.hidden = false;
    }, this.you ? 1500 : 400);
  }

  renderViewers(count) {
    this.viewerCount = count;
    const known = typeof count === 'number';
    this.viewersBox.hidden = !known || !this.showCount;
    if (!known) return;
    this.viewersN.textContent = count.toLocaleString();
    // "{n} 人在看": the number is its own element, so only the words change.
    this.viewersWord.textContent = t('chat.viewers', { n: '' }).trim();
  }

  renderSlow(seconds) {
    this.slowSeconds = seconds;
    this.slowLine.hidden = !seconds;
    if (seconds) {
      this.slowLine.replaceChildren(icon('clock'), el('span', { text: t('chat.slow_on', { n: seconds }) }));
    }
  }

  renderPinned(msg) {
    this.pinned = msg;
    this.pinBox.hidden = !msg;
    if (!msg) return;
    this.pinWho.textContent = `${msg.author.name}：`;
    this.pinText.textContent = msg.text;
  }

  applyState(state) {
    if (!state) return;
    this.renderViewers(state.viewers ? state.viewers.count : undefined);
    this.renderSlow(state.settings ? state.settings.slow_mode_seconds : 0);
    this.renderPinned(state.pinned_message);
  }

  atBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 48;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.jump.hidden = true;
  }

  messageNode(msg) {
    const role = msg.author.role;
    const mine = this.you && msg.author.subject === this.you.subject;
    const who = el('span', { class: 'msg-who' },
      el('span', { class: 'msg-name', text: msg.author.name }),
      role === 'owner' || role === 'moderator' ? el('span', { class: `role-tag role-${role}`, text: t(`role.${role}`) }) : null);
    const li = el('li', {
      class: `msg${mine ? ' msg-mine' : ''}`,
      data: { id: msg.id, subject: msg.author.subject, role },
      title: formatTime(msg.at),
    }, who, el('span', { class: 'msg-text', text: msg.text }),
    el('span', { class: 'msg-act', 'aria-hidden': 'true' }, icon('more')));
    return li;
  }

  replaceHistory(history) {
    this.messages.clear();
    this.list.replaceChildren();
    for (const msg of history) this.add(msg, { quiet: true });
    this.emptyLine.hidden = this.list.childElementCount > 0;
    this.scrollToEnd();
  }

  add(msg, { quiet = false } = {}) {
    if (!msg || !msg.id || this.messages.has(msg.id)) return; // replays repeat
    this.names.set(msg.author.subject, msg.author.name);
    const stick = quiet || this.atBottom() || (this.you && msg.author.subject === this.you.subject);
    const li = this.messageNode(msg);
    this.messages.set(msg.id, { msg, li });
    this.list.append(li);
    this.trim();
    this.emptyLine.hidden = true;
    if (quiet) return;
    if (stick) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  addSystem(text, cls) {
    const stick = this.atBottom();
    this.list.append(el('li', { class: `msg ${cls}` }, icon(cls === 'msg-sale' ? 'bag' : 'info'), el('span', { class: 'msg-text', text })));
    this.trim();
    this.emptyLine.hidden = true;
    if (stick) this.scrollToEnd();
  }

  trim() {
    while (this.list.childElementCount > KEEP) {
      const first = this.list.firstElementChild;
      if (first.dataset.id) this.messages.delete(first.dataset.id);
      first.remove();
    }
  }

  remove(id) {
    const item = this.messages.get(id);
    if (!item) return;
    item.li.remove();
    this.messages.delete(id);
    this.emptyLine.hidden = this.list.childElementCount > 0;
  }

  send() {
    const text = this.input.value.trim();
    if (!text) return;
    if (this.you && this.you.anonymous) {
      this.renderComposer();
      return;
    }
    if (this.mutedUntil > serverNow()) {
      this.showMuted('timeout');
      return;
    }
    const id = nonce('c');
    if (!this.channel.send({ type: 'chat', text, nonce: id })) {
      this.notice(t('chat.offline'));
      return;
    }
    this.pending.set(id, text);
    this.input.value = '';
    this.input.focus();
  }

  async becomeGuest() {
    const form = this.join;
    clearErrors(form);
    const nickname = this.nick.value.trim();
    if (!nickname) {
      showProblem(form, { code: 'validation_failed', errors: [{ field: 'nickname', code: 'required' }] });
      return;
    }
    this.joinButton.disabled = true;
    try {
      await becomeGuest(nickname, this.channel);
      this.nick.value = '';
    } catch (problem) {
      showProblem(form, problem);
    } finally {
      this.joinButton.disabled = false;
    }
  }

  showMuted(reason) {
    const left = this.mutedUntil - serverNow();
    if (left <= 0) return;
    const text = reason === 'flood'
      ? () => t('mute.flood', { n: Math.ceil((this.mutedUntil - serverNow()) / 1000) })
      : () => t('mute.timeout', { time: new Date(this.mutedUntil).toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', second: '2-digit' }) });
    this.notice(text(), { ms: left, live: reason === 'flood' ? text : null });
  }

  /**
   * A private notice under the chat. With `ms`, it stays that long (and, for
   * slow mode and rate limits, counts down the seconds).
   */
  notice(text, timing) {
    clearInterval(this.noticeTimer);
    clearTimeout(this.noticeHide);
    this.noticeLine.textContent = text;
    this.noticeLine.hidden = false;
    const until = Date.now() + (timing && timing.ms ? timing.ms : 6000);
    if (timing && (timing.code || timing.live)) {
      this.noticeTimer = setInterval(() => {
        const left = until - Date.now();
        if (left <= 0) {
          clearInterval(this.noticeTimer);
          this.noticeLine.hidden = true;
          return;
        }
        this.noticeLine.textContent = timing.live
          ? timing.live()
          : refusalWords({ code: timing.code, retry_after_ms: left });
      }, 500);
    } else {
      this.noticeHide = setTimeout(() => { this.noticeLine.hidden = true; }, Math.min(until - Date.now(), 3600000));
    }
  }

  /** The name seen with a subject, for the moderation log. */
  nameOf(subject) {
    return this.names.get(subject) || null;
  }
}

/**
 * Makes this phone a guest with a nickname (or renames the guest), then
 * reconnects the live channel so its hello says the visitor may chat and buy.
 */
export async function becomeGuest(nickname, channel) {
  try {
    await post('/guest', { nickname });
  } catch (problem) {
    // Signed in with an account already: that name is used; nothing to do.
    if (problem.code !== 'already_signed_in') throw problem;
  }
  channel.reconnect();
}

