// Both languages say everything: the dictionaries have the same keys, and
// every key the pages use (in templates, aria labels included, and in
// scripts) is in them. Server codes are checked against these dictionaries
// by the Rust test `i18n::every_server_code_has_words` (tests/it/i18n.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { dictionary } from '../static/js/i18n.js';
import '../static/js/live/words.js';
import '../static/js/studio/words.js';
import '../static/js/orderwords.js';
import '../static/js/replay/words.js';
import { dictionaryGaps, templateKeys, scriptKeys, missingFrom } from './i18nkeys.mjs';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const zh = dictionary('zh');
const en = dictionary('en');

function files(dir, ext) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path, ext) : path.endsWith(ext) ? [path] : [];
  });
}

test('Chinese and English have the same words', () => {
  assert.deepEqual(dictionaryGaps(zh, en), []);
});

test('every key a template names exists, aria labels included', () => {
  const missing = [];
  for (const path of files(join(web, 'pages'), '.html')) {
    const used = templateKeys(readFileSync(path, 'utf8'));
    for (const key of missingFrom(zh, en, used)) missing.push(`${path}: ${key}`);
    // A label read aloud must follow the language too.
    for (const label of used.fixed) missing.push(`${path}: aria-label "${label}" has no data-i18n-aria`);
  }
  assert.deepEqual(missing, []);
});

test('every key a script asks for exists, and its aria labels are words', () => {
  const missing = [];
  for (const path of files(join(web, 'static', 'js'), '.js')) {
    const used = scriptKeys(readFileSync(path, 'utf8'));
    for (const key of missingFrom(zh, en, used)) missing.push(`${path}: ${key}`);
    for (const label of used.fixed) missing.push(`${path}: aria-label '${label}' is not t(…)`);
  }
  assert.deepEqual(missing, []);
});

test('the checks catch what they are for', () => {
  // Dictionaries that differ, in keys, plurals and shape.
  assert.deepEqual(dictionaryGaps({ a: 'x', b: 'y' }, { a: 'x' }), ['en lacks b']);
  assert.deepEqual(dictionaryGaps({ a: 'x' }, { a: 'x', c: 'z' }), ['zh lacks c']);
  assert.deepEqual(dictionaryGaps({ a: 'x' }, { a: 'x', b_one: 'y' }), ['en: b_one is the plural of nothing']);
  assert.deepEqual(dictionaryGaps({ a: ['1', '2'] }, { a: ['1'] }), ['a: not as many lines in both']);
  assert.deepEqual(dictionaryGaps({ a: ['1'] }, { a: '1' }), ['a: not the same shape in both']);
  assert.deepEqual(dictionaryGaps({ a: 'x', a_one: 'y' }, { a: 'x' }), []);
  // A template's keys, aria labels included.
  const d = { 'k.ok': 'x' };
  const page = templateKeys(`<h1 data-i18n="k.ok">x</h1><p data-i18n="k.gone">y</p>
    <button aria-label="关闭" data-i18n-aria="k.aria">x</button><a aria-label="回首页">z</a>
    <span aria-label="+1">+</span><b data-i18n="{{ key }}">w</b>`);
  assert.deepEqual(missingFrom(d, d, page), ['k.gone', 'k.aria']);
  assert.deepEqual(page.fixed, ['回首页']);
  // A key only one language has is missing too.
  assert.deepEqual(missingFrom({ 'k.ok': 'x', 'k.zh': 'y' }, d, { keys: ['k.zh'] }), ['k.zh']);
  // A script's keys, in each form the pages use.
  const script = scriptKeys(`t('k.ok'); t("k.dq", { n }); has('k.has');
    el.dataset.i18n = on ? 'k.on' : 'k.off';
    el('p', { 'data-i18n-aria': 'k.attr', 'aria-label': 'Close' });
    el('b', { 'aria-label': '-1' }); t(\`k.made.\${code}\`); t(\`nope.\${x}\`);`);
  assert.deepEqual(script.keys, ['k.ok', 'k.dq', 'k.has', 'k.on', 'k.off', 'k.attr']);
  assert.deepEqual(script.fixed, ['Close']);
  const words = { 'k.ok': 'x', 'k.made.a': 'y' };
  assert.deepEqual(missingFrom(words, words, script), ['k.dq', 'k.has', 'k.on', 'k.off', 'k.attr', 'zh: nope.…', 'en: nope.…']);
});

test('no English is left in the Chinese words, and no Chinese in the English', () => {
  // Units and names may be either; whole sentences may not.
  const cjk = /[\u4e00-\u9fff]/;
  const allowed = new Set(['nav.lang', 'apps.title', 'apps.url', 'apps.key']);
  for (const [key, value] of Object.entries(en)) {
    if (allowed.has(key)) continue;
    const text = [].concat(value).join(' ');
    assert.ok(!cjk.test(text), `English ${key} has Chinese: ${text}`);
  }
  for (const [key, value] of Object.entries(zh)) {
    const text = [].concat(value).join(' ');
    const rest = text.replace(/\{\w+\}/g, '');
    assert.ok(cjk.test(text) || /^[\d\s./·:–%-]*$/.test(rest) || allowed.has(key), `Chinese ${key} has no Chinese: ${text}`);
  }
});

test('the dump of every word, for the server-code check, is complete', async () => {
  const { allWords } = await import('./words.mjs');
  const words = allWords();
  assert.ok(Object.keys(words.zh).length === Object.keys(zh).length);
});
