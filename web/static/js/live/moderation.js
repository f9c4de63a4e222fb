// Moderator tools, for the shop's owner and the moderators it appointed
// (the live channel's hello says `can_moderate`). From any message: delete,
// pin, mute for a while, ban. For the room: slow mode, blocked words, clear
// the chat, unpin, and the shop's moderation log (with unban).
//
// Moderation commands get no acknowledgement of their own: success shows as
// the room's event (the message disappears) and as a `moderation` entry;
// a refusal (e.g. `target_protected` when a moderator acts on the owner)
// comes back privately and is shown in words.

import { t, formatTime } from '../i18n.js';
import { el, icon, toast } from '../dom.js';
import { get } from '../api.js';
import { openSheet, ask } from '../sheet.js';
import { refusalWords } from './chat.js';
import { describe } from '../forms.js';
import { entryWords, targetWords } from './modlog.js';
import { durationWords } from './words.js';

const TIMEOUTS = [10, 60, 600, 3600, 86400];
const SLOW = [0, 5, 10, 30, 60];
const MOD_COMMANDS = new Set([
  'delete_message', 'timeout', 'ban', 'unban', 'set_slow_mode', 'set_blocked_words',
  'pin_message', 'unpin_message', 'clear_chat', 'pin_offer', 'unpin_offer',
]);

/** "加微信, spam，广告\n刷屏" -> ["加微信", "spam", "广告", "刷屏"] */
export function parseWords(text) {
  const seen = new Set();
  const words = [];
  for (const raw of String(text).split(/[\n,，、;；]+/)) {
    const w = raw.trim();
    if (!w || seen.has(w.toLowerCase())) continue;
    seen.add(w.toLowerCase());
    words.push(w);
  }
  return words;
}

export class ModTools {
  /**
   * @param {import('./chat.js').ChatPanel} chat
   * @param {import('./channel.js').LiveChannel} channel
   */
  constructor(chat, channel, { shopId, titleOf = () => null }) {
    this.chat = chat;
    this.titleOf = titleOf;
    this.channel = channel;
    this.shopId = shopId;
    this.enabled = false;
    this.words = [];
    this.slow = 0;
    this.log = [];
    this.logLoaded = false;
    this.awaiting = null; // { action, done } the last command sent, for its toast
    chat.onMessageAction = (msg) => this.actOn(msg);
    this.listen();
    this.onLang = () => { if (this.enabled) this.build(); };
    document.addEventListener('langchange', this.onLang);
  }

  destroy() {
    document.removeEventListener('langchange', this.onLang);
  }

  listen() {
    const c = this.channel;
    c.on('hello', (m) => {
      this.you = m.you;
      this.shopId = m.shop || this.shopId;
      this.enabled = Boolean(m.you.can_moderate);
      if (m.blocked_words) this.words = m.blocked_words;
      if (m.settings) this.slow = m.settings.slow_mode_seconds;
      if (this.enabled) this.build();
      else this.teardown();
    });
    c.on('settings', (m) => { this.slow = m.slow_mode_seconds; this.renderSlow(); });
    c.on('snapshot', (m) => { if (m.state) { this.slow = m.state.settings.slow_mode_seconds; this.renderSlow(); } });
    c.on('room_state', (m) => { if (m.state) { this.slow = m.state.settings.slow_mode_seconds; this.renderSlow(); } });
    c.on('pinned_message', () => this.renderUnpin());
    c.on('blocked_words', (m) => {
      this.words = m.words;
      if (this.wordsBox && document.activeElement !== this.wordsBox) this.wordsBox.value = this.words.join('\n');
    });
    c.on('moderation', (m) => {
      this.log.unshift(m);
      this.renderLog();
      if (this.you && m.actor && m.actor.subject === this.you.subject) this.confirmDone(m);
    });
    c.on('refused', (m) => {
      if (!MOD_COMMANDS.has(m.command)) return;
      this.awaiting = null;
      this.chat.notice(refusalWords(m));
      toast(refusalWords(m), 4000);
    });
  }

  /** A toast when the room confirms what this moderator just did. */
  confirmDone(entry) {
    const words = {
      delete_message: t('mod.done_delete'),
      ban: t('mod.done_ban'),
      unban: t('mod.done_unban'),
      pin_message: t('mod.done_pin'),
      clear_chat: t('mod.done_clear'),
      slow_mode: t('mod.done_slow'),
      blocked_words: t('mod.words_saved'),
    };
    let text = words[entry.action];
    if (entry.action === 'timeout' && this.awaiting && this.awaiting.seconds) {
      text = t('mod.done_timeout', { d: durationWords(this.awaiting.seconds, t) });
    }
    this.awaiting = null;
    if (text) toast(text);
  }

  send(message) {
    if (!this.channel.send(message)) {
      toast(t('chat.offline'), 4000);
      return false;
    }
    this.awaiting = message;
    return true;
  }

  teardown() {
    this.chat.toolsSlot.replaceChildren();
    this.panel = null;
  }

  build() {
    const toggle = el('button', { type: 'button', class: 'btn btn-quiet btn-small mod-toggle', 'aria-expanded': 'false' },
      icon('shield'), el('span', { text: t('mod.tools') }));
    this.slowRow = el('div', { class: 'chips', role: 'group', 'aria-label': t('mod.slow') });
    this.wordsBox = el('textarea', { rows: '3', maxlength: '4000', 'aria-label': t('mod.words') });
    this.wordsBox.value = this.words.join('\n');
    const saveWords = el('button', { type: 'button', class: 'btn btn-secondary btn-small' }, icon('check'), el('span', { text: t('mod.words_save') }));
    this.unpinButton = el('button', { type: 'button', class: 'btn btn-quiet btn-small' }, icon('pin'), el('span', { text: t('mod.unpin') }));
    const clear = el('button', { type: 'button', class: 'btn btn-danger-quiet btn-small' }, icon('trash'), el('span', { text: t('mod.clear') }));
    this.logList = el('ol', { class: 'mod-log' });
    const logBox = el('details', { class: 'mod-log-box' },
      el('summary', {}, icon('list'), el('span', { text: t('mod.log') })), this.logList);
    const close = el('button', { type: 'button', class: 'btn btn-quiet btn-small mod-close' }, icon('close'), el('span', { text: t('mod.close') }));
    this.panel = el('div', { class: 'mod-panel', hidden: true },
      close,
      el('div', { class: 'mod-group' }, el('p', { class: 'mod-label' }, icon('clock'), el('span', { text: t('mod.slow') })), this.slowRow),
      el('div', { class: 'mod-group' },
        el('p', { class: 'mod-label' }, icon('ban'), el('span', { text: t('mod.words') })),
        el('p', { class: 'muted small', text: t('mod.words_hint') }),
        this.wordsBox, saveWords),
      el('div', { class: 'btn-row' }, this.unpinButton, clear),
      logBox);
    toggle.addEventListener('click', () => {
      this.panel.hidden = !this.panel.hidden;
      toggle.setAttribute('aria-expanded', String(!this.panel.hidden));
    });
    // On a phone the panel covers the chat like a sheet: it closes itself.
    close.addEventListener('click', () => {
      this.panel.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
      toggle.focus();
    });
    saveWords.addEventListener('click', () => this.send({ type: 'set_blocked_words', words: parseWords(this.wordsBox.value) }));
    this.unpinButton.addEventListener('click', () => this.send({ type: 'unpin_message' }));
    clear.addEventListener('click', async () => {
      if (await ask(t('mod.clear_q'), t('mod.clear'))) this.send({ type: 'clear_chat' });
    });
    logBox.addEventListener('toggle', () => { if (logBox.open) this.loadLog(); });
    // The toggle sits in the chat's header, the panel under it.
    const old = this.chat.head.querySelector('.mod-toggle');
    if (old) old.remove();
    this.chat.head.append(toggle);
    this.chat.toolsSlot.replaceChildren(this.panel);
    this.renderSlow();
    this.renderUnpin();
    this.renderLog();
  }

  renderSlow() {
    if (!this.slowRow) return;
    this.slowRow.replaceChildren(...SLOW.map((s) => {
      const b = el('button', {
        type: 'button', class: 'chip', 'aria-pressed': String(s === this.slow),
        text: s === 0 ? t('mod.slow_off') : durationWords(s, t),
      });
      b.addEventListener('click', () => this.send({ type: 'set_slow_mode', seconds: s }));
      return b;
    }));
  }

  renderUnpin() {
    if (this.unpinButton) this.unpinButton.hidden = !this.chat.pinned;
  }

  async loadLog() {
    if (this.logLoaded || !this.shopId) return;
    try {
      const entries = await get(`/shops/${encodeURIComponent(this.shopId)}/moderation-log?limit=50`);
      const loaded = entries.map((e) => ({
        action: e.action,
        actor: e.actor ? { subject: e.actor, name: e.actor_name } : null,
        target: e.target,
        target_name: e.target_name,
        reason: e.reason,
        seconds: e.seconds,
        count: e.count,
        offer: e.offer,
        title: e.title,
        at: e.at,
      }));
      // Entries heard live while loading may be in the answer too.
      const key = (e) => `${e.action}|${e.target || ''}|${Date.parse(e.at)}`;
      const known = new Set(loaded.map(key));
      this.log = [...this.log.filter((e) => !known.has(key(e))), ...loaded];
      this.logLoaded = true;
      this.renderLog();
      this.logList.dataset.loaded = 'true';
    } catch (problem) {
      this.logList.replaceChildren(el('li', { class: 'muted', text: describe(problem) }));
    }
  }

  renderLog() {
    if (!this.logList) return;
    if (!this.log.length) {
      this.logList.replaceChildren(el('li', { class: 'muted', text: t('mod.log_empty') }));
      return;
    }
    this.logList.replaceChildren(...this.log.slice(0, 100).map((e) => this.logEntry(e)));
  }

  logEntry(e) {
    const li = logLine(e, { nameOf: (s) => this.chat.nameOf(s), titleOf: this.titleOf });
    if (e.action === 'ban' && e.target) {
      const unban = el('button', { type: 'button', class: 'btn btn-quiet btn-small', text: t('mod.unban') });
      unban.addEventListener('click', () => this.send({ type: 'unban', subject: e.target }));
      li.append(unban);
    }
    return li;
  }

  /** The sheet of actions for one message. */
  actOn(msg) {
    if (!this.enabled) return;
    const self = this.you && msg.author.subject === this.you.subject;
    const action = (name, words, handler, cls = 'btn btn-secondary') => {
      const b = el('button', { type: 'button', class: `${cls} act` }, icon(name), el('span', { text: words }));
      b.addEventListener('click', handler);
      return b;
    };
    const quote = el('div', { class: 'act-quote' },
      el('strong', { text: msg.author.name }), el('p', { text: msg.text }));
    const del = action('trash', t('mod.delete'), () => {
      this.send({ type: 'delete_message', message: msg.id });
      sheet.close();
    });
    const pin = action('pin', t('mod.pin'), () => {
      this.send({ type: 'pin_message', message: msg.id });
      sheet.close();
    });
    const content = [quote, el('div', { class: 'act-row' }, del, pin)];
    if (!self) {
      const chips = el('div', { class: 'chips' }, ...TIMEOUTS.map((s) => {
        const b = el('button', { type: 'button', class: 'chip', text: durationWords(s, t) });
        b.addEventListener('click', () => {
          this.send({ type: 'timeout', subject: msg.author.subject, seconds: s });
          sheet.close();
        });
        return b;
      }));
      const ban = action('ban', t('mod.ban'), async () => {
        sheet.close();
        if (await ask(t('mod.ban_q', { name: msg.author.name }), t('mod.ban'))) {
          this.send({ type: 'ban', subject: msg.author.subject });
        }
      }, 'btn btn-danger-quiet');
      content.push(
        el('div', { class: 'mod-group' }, el('p', { class: 'mod-label' }, icon('mute'), el('span', { text: t('mod.timeout') })), chips),
        ban);
    }
    const sheet = openSheet({ title: t('chat.actions'), content, className: 'sheet-actions' });
  }
}

/**
 * One line of the moderation log: when, who, what, whom and why, in the
 * page's language. `e.actor` is `{ name }` (live) or `e.actor_name` is
 * set (the log's API).
 */
export function logLine(e, { nameOf, titleOf } = {}) {
  const actor = e.actor ? e.actor.name : e.actor_name;
  const target = targetWords(e, t, nameOf);
  const words = entryWords(e, t, titleOf);
  return el('li', { class: 'mod-entry' },
    el('span', { class: 'mod-time', text: formatTime(e.at) }),
    el('span', { class: 'mod-what' },
      el('strong', { text: actor || t('mod.auto') }), ' ', words.action,
      target ? el('span', { class: 'mod-target', text: ` ${target}` }) : null,
      words.extra ? el('span', { class: 'muted', text: ` · ${words.extra}` }) : null));
}
