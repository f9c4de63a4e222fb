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

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const zh = dictionary('zh');
const en = dictionary('en');

function files(dir, ext) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path, ext) : path.endsWith(ext) ? [path] : [];
  });
}

/** Keys without their language-specific plural forms (`…_one`). */
const base = (keys) => keys.filter((k) => !k.endsWith('_one'));

test('Chinese and English have the same words', () => {
  const missingEn = base(Object.keys(zh)).filter((k) => !(k in en));
  const missingZh = base(Object.keys(en)).filter((k) => !(k in zh));
  assert.deepEqual(missingEn, [], 'keys without English');
  assert.deepEqual(missingZh, [], 'keys without Chinese');
  for (const key of Object.keys(en).filter((k) => k.endsWith('_one'))) {
    assert.ok(key.slice(0, -4) in en, `${key} is a plural form of a key`);
  }
  for (const [key, value] of Object.entries(zh)) {
    assert.equal(typeof value, typeof en[key], `${key}: same shape in both`);
    if (Array.isArray(value)) assert.equal(value.length, en[key].length, `${key}: as many lines`);
  }
});

test('every key a template names exists, aria labels included', () => {
  const missing = [];
  for (const path of files(join(web, 'pages'), '.html')) {
    const html = readFileSync(path, 'utf8');
    for (const m of html.matchAll(/data-i18n(?:-placeholder|-list|-aria)?="([^"]+)"/g)) {
      if (!(m[1] in zh) || !(m[1] in en)) missing.push(`${path}: ${m[1]}`);
    }
    // A label read aloud must follow the language too.
    for (const m of html.matchAll(/<[^>]*\saria-label="([^"]*)"[^>]*>/g)) {
      const numeric = /^[+-]?\d+$/.test(m[1]);
      if (!numeric && !m[0].includes('data-i18n-aria=')) missing.push(`${path}: aria-label "${m[1]}" has no data-i18n-aria`);
    }
  }
  assert.deepEqual(missing, []);
});

test('every key a script asks for exists', () => {
  const missing = [];
  for (const path of files(join(web, 'static', 'js'), '.js')) {
    const code = readFileSync(path, 'utf8');
    for (const m of code.matchAll(/\bt\('([a-z][\w.]*)'/g)) {
      if (!(m[1] in zh) || !(m[1] in en)) missing.push(`${path}: ${m[1]}`);
    }
  }
  assert.deepEqual(missing, []);
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
