// The server's clock, as well as the page can tell. Countdowns (an offer
// opening, a reservation running out) are set in server time; a phone whose
// clock is minutes off would otherwise show the wrong time left.

let skewMs = 0;      // server time minus phone time
let precise = false; // learned from a millisecond timestamp, not a Date header

/** Server time now, in Unix milliseconds. */
export function serverNow() {
  return Date.now() + skewMs;
}

/** Milliseconds from now (server time) until an RFC 3339 instant; NaN if unreadable. */
export function msUntil(iso) {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? NaN : at - serverNow();
}

/**
 * A server timestamp taken at about the time its answer arrived (e.g. a
 * reservation's `created_at`). Precise to the network delay.
 */
export function noteServerTime(iso) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return;
  skewMs = at - Date.now();
  precise = true;
}

/** An HTTP Date header: whole seconds, used until something better arrives. */
export function noteServerDate(header) {
  if (precise || !header) return;
  const at = Date.parse(header);
  if (Number.isNaN(at)) return;
  const skew = at - Date.now();
  // Within a second either way is the header's own rounding: keep the phone's.
  skewMs = Math.abs(skew) > 1500 ? skew : 0;
}

/** "4:05", "1:02:09" for a duration in milliseconds (never negative). */
export function clockText(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}
