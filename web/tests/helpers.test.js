// Unit tests of the pages' pure helpers, under node's own test runner
// (`npm test` in web/, run by .ci/run). The modules are the same files the
// phones load; none of them touches the page when it is imported.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { amount, orderNumber, yuan, t } from '../static/js/i18n.js';
import { clockText } from '../static/js/clock.js';
import { classify, sample } from '../static/js/quality.js';
import { parseLinkHeader, backoff } from '../static/js/webrtc.js';
import { problemVars, describe } from '../static/js/forms.js';
import { parseYuan, fenToYuanText } from '../static/js/studio/products.js';
import { parseWords } from '../static/js/live/moderation.js';
import { entryFacts, entryWords, targetWords } from '../static/js/live/modlog.js';
import { buyProblemWords } from '../static/js/live/checkout.js';
import '../static/js/studio/words.js';

test('a count and a unit that starts with a number do not run together', () => {
  assert.equal(amount(3, '袋', 'zh'), '3 袋');
  assert.equal(amount(3, '20斤袋', 'zh'), '3 份');
  assert.equal(amount(3, '20斤袋', 'en'), '3');
  assert.equal(amount(2, '５kg', 'zh'), '2 份');
  assert.equal(amount(1, 'bag', 'en'), '1 bag');
  assert.equal(amount(4, '', 'zh'), '4 份');
});

test('the order number is the server\'s, or the same six characters it derives', () => {
  assert.equal(orderNumber({ id: 'ord_ykmgunnz9g794vvk', number: 'K7Q2M9' }), 'K7Q2M9');
  assert.equal(orderNumber({ id: 'ord_ykmgunnz9g794vvk' }), '794VVK');
  assert.equal(orderNumber({}), '');
});

test('money is whole fen, shown in yuan', () => {
  assert.equal(yuan(16800), '¥168');
  assert.equal(yuan(16850), '¥168.50');
  assert.equal(yuan(5), '¥0.05');
  assert.equal(parseYuan('１６８.5元'), 16850);
  assert.equal(parseYuan('168。50'), 16850);
  assert.equal(parseYuan('abc'), null);
  assert.equal(parseYuan('1.234'), null);
  assert.equal(fenToYuanText(16850), '168.50');
  assert.equal(fenToYuanText(16800), '168');
});

test('plural forms: "1 order", "2 orders"', () => {
  // The default language is Chinese (no storage in node); English words
  // are checked through the dictionary entries themselves.
  assert.equal(t('so.sum', { n: 2, total: '¥1' }), '2 单 · 合计 ¥1');
});

test('countdowns read as minutes and seconds, never negative', () => {
  assert.equal(clockText(65_000), '1:05');
  assert.equal(clockText(3_726_000), '1:02:06');
  assert.equal(clockText(-5), '0:00');
  assert.equal(clockText(1), '0:01');
});

test('signal quality is one word a farmer can act on', () => {
  assert.equal(classify({ kbps: 1200, rttMs: 80, lossPct: 0 }), 'good');
  assert.equal(classify({ kbps: 300, rttMs: 80, lossPct: 0 }), 'fair');
  assert.equal(classify({ kbps: 1200, rttMs: 900, lossPct: 0 }), 'poor');
  assert.equal(classify({ kbps: 1200, rttMs: null, lossPct: 9 }), 'poor');
  const first = new Map([['o', { type: 'outbound-rtp', kind: 'video', bytesSent: 0, packetsSent: 0, timestamp: 1000 }]]);
  const second = new Map([
    ['o', { type: 'outbound-rtp', kind: 'video', bytesSent: 250_000, packetsSent: 200, timestamp: 3000 }],
    ['r', { type: 'remote-inbound-rtp', kind: 'video', roundTripTime: 0.12, packetsLost: 0 }],
  ]);
  const a = sample(first, null);
  const b = sample(second, a.now);
  assert.equal(b.stats.kbps, 1000);
  assert.equal(b.stats.rttMs, 120);
});

test('ICE servers come from Link headers', () => {
  const servers = parseLinkHeader('<stun:stun.example.cn:3478>; rel="ice-server", <turn:turn.example.cn?transport=udp>; rel="ice-server"; username="u"; credential="p"; credential-type="password"');
  assert.deepEqual(servers, [
    { urls: 'stun:stun.example.cn:3478' },
    { urls: 'turn:turn.example.cn?transport=udp', username: 'u', credential: 'p' },
  ]);
  assert.deepEqual(parseLinkHeader(null), []);
  for (let i = 0; i < 20; i++) {
    const ms = backoff(i, 8000);
    assert.ok(ms >= 0 && ms <= 8000, `backoff ${ms}`);
  }
});

test('problems are put in words from their code and params, never their English detail', () => {
  assert.deepEqual(problemVars({ code: 'too_long', params: { max: 24 } }).n, 24);
  // The server's English is for developers: not even its numbers are read.
  assert.equal(problemVars({ code: 'too_long', message: 'must be at most 40 characters' }).n, '');
  assert.equal(describe({ code: 'local', message: '请写价钱' }), '请写价钱');
  assert.equal(describe({ code: 'limit_reached', params: { limit: 2, already: 2 } }), '每人最多买 2 份，您已经有 2 份了');
  assert.equal(describe({ code: 'too_long', params: { max: 24 } }), '太长了，最多 24 个字');
  assert.equal(describe({ code: 'something_new', detail: 'An English sentence' }), '出错了，请再试一次');
  assert.equal(buyProblemWords({ code: 'insufficient_stock', params: { available: 1 } }, null, 2), '只剩 1 份了，少买几份试试');
  assert.equal(buyProblemWords({ code: 'limit_reached', params: { limit: 2 } }, null, 1), '每人最多买 2 份，您已经买够了');
  assert.equal(buyProblemWords({ code: 'over_limit' }, { max_per_buyer: 5 }, 1), '每人最多买 5 份，您已经买够了');
  assert.equal(buyProblemWords({ code: 'mystery', detail: 'An English sentence' }, null, 1), '没抢到，请再试一次');
});

test('blocked words split on any separator, once each', () => {
  assert.deepEqual(parseWords('加微信, spam，广告\n刷屏、SPAM;;'), ['加微信', 'spam', '广告', '刷屏']);
});

test('moderation entries read from typed facts, never their English detail', () => {
  assert.deepEqual(entryFacts({ action: 'slow_mode', seconds: 10 }), { seconds: 10 });
  assert.deepEqual(entryFacts({ action: 'slow_mode', seconds: 0, detail: 'off' }), { seconds: 0 });
  assert.deepEqual(entryFacts({ action: 'timeout', detail: '10 min: 刷屏' }), {});
  assert.deepEqual(entryFacts({ action: 'ban', reason: '', detail: 'spam' }), {});
  const pin = entryWords({ action: 'pin_offer', detail: 'ofr_5x5t: 羊粪小米', offer: 'ofr_5x5t', title: '羊粪小米' }, t);
  assert.equal(pin.action, '挂出商品');
  assert.equal(pin.extra, '「羊粪小米」');
  assert.ok(!JSON.stringify(pin).includes('ofr_'));
  assert.equal(entryWords({ action: 'slow_mode', seconds: 10 }, t).action, '把慢速模式设为 10秒');
  assert.equal(entryWords({ action: 'slow_mode', seconds: 0 }, t).action, '关闭了慢速模式');
  assert.equal(entryWords({ action: 'unpin_offer', offer: 'ofr_1' }, t, () => '新小米').extra, '「新小米」');
  assert.equal(entryWords({ action: 'ban', reason: '骂人' }, t).extra, '原因：骂人');
  // Whom: a name, never an id.
  assert.equal(targetWords({ action: 'ban', target: 'gst_9x8y7z6w5v' }, t, () => '小李'), '小李');
  assert.equal(targetWords({ action: 'ban', target: 'gst_9x8y7z6w5v', target_name: '老张' }, t), '老张');
  assert.equal(targetWords({ action: 'ban', target: 'gst_9x8y7z6w5v' }, t), '某人');
  assert.equal(targetWords({ action: 'clear_chat' }, t), '');
});
