// The replay's timeline, pure (unit-tested in web/tests/replay.test.js).
// Every time is milliseconds from the start of the recording's first
// segment; a segment starts at `start_ms` and plays from its own time 0.

/** The index of the segment that plays `ms` (the last one starting at or before it). */
export function segmentAt(segments, ms) {
  let found = 0;
  segments.forEach((s, i) => { if (s.start_ms <= ms) found = i; });
  return found;
}

/** Where to seek for `ms`: which segment, and how far into it (seconds). */
export function seekTarget(segments, ms) {
  const index = segmentAt(segments, ms);
  const start = segments[index] ? segments[index].start_ms : 0;
  return { index, seconds: Math.max(0, ms - start) / 1000 };
}

/** The timeline position of a segment's playback time. */
export function position(segments, index, seconds) {
  const start = segments[index] ? segments[index].start_ms : 0;
  return start + Math.round(seconds * 1000);
}

/** The offer on screen at `ms`: of the pins covering it, the latest pinned. */
export function pinnedAt(pins, ms) {
  let best = null;
  for (const p of pins) {
    if (p.from_ms <= ms && (p.until_ms === null || p.until_ms === undefined || ms < p.until_ms)) {
      if (!best || p.from_ms >= best.from_ms) best = p;
    }
  }
  return best ? best.offer : null;
}

/** How many chat lines (sorted by at_ms) were posted by `ms`. */
export function postedBy(lines, ms) {
  let lo = 0;
  let hi = lines.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (lines[mid].at_ms <= ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The last `max` lines on screen at `ms`: posted by then, not cleared yet. */
export function chatOnScreen(lines, ms, max) {
  const shown = [];
  for (let i = postedBy(lines, ms) - 1; i >= 0 && shown.length < max; i -= 1) {
    const line = lines[i];
    if (line.cleared_ms === null || line.cleared_ms === undefined || line.cleared_ms > ms) shown.push(line);
  }
  return shown.reverse();
}

/** 0:05, 12:03, 1:02:03. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
