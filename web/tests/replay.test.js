// The replay page's timeline helpers (web/static/js/replay/timeline.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { chatOnScreen, clock, pinnedAt, position, postedBy, seekTarget, segmentAt } from '../static/js/replay/timeline.js';

const segments = [{ start_ms: 0 }, { start_ms: 60_000 }];

test('a time on the timeline is found in its segment, and back', () => {
  assert.equal(segmentAt(segments, 0), 0);
  assert.equal(segmentAt(segments, 59_999), 0);
  assert.equal(segmentAt(segments, 61_000), 1);
  assert.deepEqual(seekTarget(segments, 75_500), { index: 1, seconds: 15.5 });
  assert.equal(position(segments, 1, 15.5), 75_500);
  assert.deepEqual(seekTarget([], 5000), { index: 0, seconds: 5 });
});

test('the offer on screen is the latest pinned of those still pinned', () => {
  const pins = [
    { offer: 'a', from_ms: 1000, until_ms: 9000 },
    { offer: 'b', from_ms: 5000, until_ms: null },
  ];
  assert.equal(pinnedAt(pins, 500), null);
  assert.equal(pinnedAt(pins, 2000), 'a');
  assert.equal(pinnedAt(pins, 6000), 'b');
  assert.equal(pinnedAt([pins[0]], 9000), null, 'unpinned at 9 s');
});

test('chat shows what was posted by then and not yet cleared', () => {
  const lines = [
    { id: '1', at_ms: -200, cleared_ms: 3000 },
    { id: '2', at_ms: 1000, cleared_ms: null },
    { id: '3', at_ms: 2000 },
    { id: '4', at_ms: 5000 },
  ];
  assert.equal(postedBy(lines, 999), 1);
  assert.equal(postedBy(lines, 1000), 2);
  assert.deepEqual(chatOnScreen(lines, 2500, 10).map((l) => l.id), ['1', '2', '3']);
  assert.deepEqual(chatOnScreen(lines, 3000, 10).map((l) => l.id), ['2', '3'], 'cleared at 3 s');
  assert.deepEqual(chatOnScreen(lines, 9000, 2).map((l) => l.id), ['3', '4'], 'the newest few');
});

test('times read like a player clock', () => {
  assert.equal(clock(5_400), '0:05');
  assert.equal(clock(723_000), '12:03');
  assert.equal(clock(3_723_000), '1:02:03');
  assert.equal(clock(-10), '0:00');
});

