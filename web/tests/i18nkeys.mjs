// The checks of tests/i18n.test.js as pure functions, so the test can also
// show that each one catches what it is for (a check that cannot fail
// proves nothing).

/** Keys without their language-specific plural forms (`…_one`). */
const base = (keys) => keys.filter((k) => !k.endsWith('_one'));

/**
 * How two dictionaries differ: keys only one has, plural forms of nothing,
 * and entries of different shapes (a sentence in one, a list in the other).
 */
export function dictionaryGaps(zh, en) {
  const gaps = [];
  for (const k of base(Object.keys(zh))) if (!(k in en)) gaps.push(`en lacks ${k}`);
  for (const k of base(Object.keys(en))) if (!(k in zh)) gaps.push(`zh lacks ${k}`);
  for (const [lang, d] of [['zh', zh], ['en', en]]) {
    for (const k of Object.keys(d).filter((key) => key.endsWith('_one'))) {
      if (!(k.slice(0, -4) in d)) gaps.push(`${lang}: ${k} is the plural of nothing`);
    }
  }
  for (const [key, value] of Object.entries(zh)) {
    if (!(key in en)) continue;
    if (typeof value !== typeof en[key] || Array.isArray(value) !== Array.isArray(en[key])) {
      gaps.push(`${key}: not the same shape in both`);
    } else if (Array.isArray(value) && value.length !== en[key].length) {
      gaps.push(`${key}: not as many lines in both`);
    }
  }
  return gaps;
}

/** Whether an aria-label may stay as it is in every language ("+1"). */
const languageFree = (label) => /^[+-]?\d+$/.test(label);

/**
 * The keys a page template names (`data-i18n`, `-placeholder`, `-list`,
 * `-aria`), and aria labels that would not follow the language.
 */
export function templateKeys(html) {
  const keys = [];
  const fixed = [];
  for (const m of html.matchAll(/data-i18n(?:-placeholder|-list|-aria)?="([^"]+)"/g)) {
    // A key the template computes (`{{ … }}`) is the server's to check.
    if (!m[1].includes('{')) keys.push(m[1]);
  }
  for (const m of html.matchAll(/<[^>]*\saria-label="([^"]*)"[^>]*>/g)) {
    if (!languageFree(m[1]) && !m[0].includes('data-i18n-aria=')) fixed.push(m[1]);
  }
  return { keys, fixed };
}

/**
 * The keys a script asks for: `t('key')`, `has('key')`, keys given to
 * `dataset.i18n` (also through `a ? 'x' : 'y'`) or a `data-i18n…`
 * attribute; the prefixes of keys it builds (`t(\`r.${code}\`)`), each of
 * which must start some key; and aria labels written as fixed text.
 */
export function scriptKeys(code) {
  const keys = [];
  const prefixes = [];
  const fixed = [];
  const quoted = (text) => [...text.matchAll(/'([a-z][\w.]*)'|"([a-z][\w.]*)"/g)].map((m) => m[1] ?? m[2]);
  for (const m of code.matchAll(/\b(?:t|has)\(\s*(?:'([a-z][\w.]*)'|"([a-z][\w.]*)")/g)) keys.push(m[1] ?? m[2]);
  for (const m of code.matchAll(/\.dataset\.i18n(?:Placeholder|List|Aria)?\s*=\s*([^;\n]+)/g)) keys.push(...quoted(m[1]));
  for (const m of code.matchAll(/'data-i18n(?:-placeholder|-list|-aria)?'\s*:\s*([^,}\n]+)/g)) keys.push(...quoted(m[1]));
  for (const m of code.matchAll(/\b(?:t|has)\(\s*`([a-z][\w.]*)\$\{/g)) prefixes.push(m[1]);
  for (const m of code.matchAll(/'aria-label'\s*[:,]\s*'([^']*)'/g)) {
    if (!languageFree(m[1])) fixed.push(m[1]);
  }
  return { keys, prefixes, fixed };
}

/** The keys (and prefixes) of `used` that either dictionary lacks. */
export function missingFrom(zh, en, { keys = [], prefixes = [] }) {
  const missing = keys.filter((k) => !(k in zh) || !(k in en));
  for (const p of prefixes) {
    for (const [lang, d] of [['zh', zh], ['en', en]]) {
      if (!Object.keys(d).some((k) => k.startsWith(p))) missing.push(`${lang}: ${p}…`);
    }
  }
  return missing;
}
