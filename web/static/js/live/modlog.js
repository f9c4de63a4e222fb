// One line of the moderation log in words. Entries carry typed facts
// (`reason` in the moderator's own words, `seconds`, `count`, `offer`,
// `title`); entries from a server that still wrote an English `detail`
// are read into the same facts. A detail that reads as none of them is
// left out: the log never shows internal ids or another language.

import { durationWords } from './words.js';

const UNIT_SECONDS = { s: 1, min: 60, h: 3600 };

function seconds(n, unit) {
  return Number(n) * UNIT_SECONDS[unit];
}

/** The facts of an entry, from its typed fields or an older `detail`. */
export function entryFacts(entry) {
  const facts = {};
  for (const key of ['reason', 'seconds', 'count', 'offer', 'title']) {
    if (entry[key] !== undefined && entry[key] !== null && entry[key] !== '') facts[key] = entry[key];
  }
  const detail = typeof entry.detail === 'string' ? entry.detail.trim() : '';
  if (!detail || Object.keys(facts).length) return facts;
  const duration = /^(\d+) (s|min|h)(?:: ([\s\S]+))?$/.exec(detail);
  switch (entry.action) {
    case 'timeout':
      if (duration) {
        facts.seconds = seconds(duration[1], duration[2]);
        if (duration[3]) facts.reason = duration[3];
      }
      break;
    case 'ban':
      facts.reason = detail;
      break;
    case 'slow_mode':
      if (detail === 'off') facts.seconds = 0;
      else if (duration) facts.seconds = seconds(duration[1], duration[2]);
      break;
    case 'blocked_words': {
      const m = /^(\d+) words?$/.exec(detail);
      if (m) facts.count = Number(m[1]);
      break;
    }
    case 'pin_offer': {
      const m = /^(ofr_\S+): ([\s\S]+)$/.exec(detail);
      if (m) { facts.offer = m[1]; facts.title = m[2]; }
      break;
    }
    case 'unpin_offer':
      if (/^ofr_\S+$/.test(detail)) facts.offer = detail;
      break;
    case 'auto_mute': {
      const m = /muted (\d+) (s|min|h)/.exec(detail);
      if (m) facts.seconds = seconds(m[1], m[2]);
      break;
    }
    default:
      break;
  }
  return facts;
}

/**
 * Whom an entry was about, in words: the name the page knows
 * (`nameOf(subject)`), else the name the log sent, else "someone";
 * never their `gst_…`/`usr_…` id. Empty when it was about nobody.
 */
export function targetWords(entry, t, nameOf = () => null) {
  if (!entry.target) return '';
  return nameOf(entry.target) || entry.target_name || t('mod.someone');
}

/**
 * `{ action, extra }` words for an entry: what was done (with the setting
 * it was set to), and the moderator's reason or the product, if any.
 * `titleOf(offerId)` names an offer the page knows, for entries without a title.
 */
export function entryWords(entry, t, titleOf = () => null) {
  const f = entryFacts(entry);
  let action = t(`mod.a.${entry.action}`);
  const extra = [];
  if (entry.action === 'slow_mode' && f.seconds !== undefined) {
    action = f.seconds === 0 ? t('mod.a.slow_mode_off') : t('mod.a.slow_mode_to', { d: durationWords(f.seconds, t) });
  } else if ((entry.action === 'timeout' || entry.action === 'auto_mute') && f.seconds) {
    extra.push(durationWords(f.seconds, t));
  } else if (entry.action === 'blocked_words' && f.count !== undefined) {
    extra.push(t('mod.words_count', { n: f.count }));
  } else if (entry.action === 'pin_offer' || entry.action === 'unpin_offer') {
    const title = f.title || (f.offer && titleOf(f.offer));
    if (title) extra.push(`「${title}」`);
  }
  if (f.reason) extra.push(t('mod.reason', { reason: f.reason }));
  return { action, extra: extra.join(' · ') };
}
