// One line of the moderation log in words. Entries carry typed facts
// (`reason` in the moderator's own words, `seconds`, `count`, `offer`,
// `title`); their English `detail` is for developers and never read, so
// the log never shows internal ids or another language.

import { durationWords } from './words.js';

/** The facts of an entry: its typed fields that are set. */
export function entryFacts(entry) {
  const facts = {};
  for (const key of ['reason', 'seconds', 'count', 'offer', 'title']) {
    if (entry[key] !== undefined && entry[key] !== null && entry[key] !== '') facts[key] = entry[key];
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
