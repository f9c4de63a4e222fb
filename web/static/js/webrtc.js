// What the WHIP publisher and the WHEP player share: the HTTP side of
// RFC 9725 (POST an SDP offer, get 201 + Location + answer; trickle ICE
// with PATCH; DELETE to leave) and reading ICE servers from Link headers.

import { problemFrom } from './api.js';

/** ICE servers from `Link: <stun:…>; rel="ice-server"; username=…` headers. */
export function parseLinkHeader(value) {
  const servers = [];
  if (!value) return servers;
  for (const part of value.split(/,(?=\s*<)/)) {
    const m = /<([^>]+)>(.*)/.exec(part.trim());
    if (!m || !/rel="?ice-server"?/i.test(m[2])) continue;
    const server = { urls: m[1] };
    const user = /username="([^"]*)"/i.exec(m[2]);
    const cred = /credential="([^"]*)"/i.exec(m[2]);
    if (user) server.username = user[1];
    if (cred) server.credential = cred[1];
    servers.push(server);
  }
  return servers;
}

const iceCache = new Map();

/** Asks the endpoint which STUN/TURN servers to use (once per page). */
export async function iceServersFor(endpoint) {
  if (iceCache.has(endpoint)) return iceCache.get(endpoint);
  let servers = [];
  try {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 3000);
    const res = await fetch(endpoint, { method: 'OPTIONS', signal: ctrl.signal, credentials: 'same-origin' });
    clearTimeout(timer);
    servers = parseLinkHeader(res.headers.get('link'));
  } catch (_) { /* none: host candidates still work */ }
  iceCache.set(endpoint, servers);
  return servers;
}

/**
 * One WHIP/WHEP session resource. `open` posts the offer; candidates found
 * afterwards are sent with PATCH (the answer already carries the server's).
 */
export class SessionResource {
  constructor(endpoint, pc) {
    this.endpoint = endpoint;
    this.pc = pc;
    this.location = null;
    this.pending = [];
    this.closed = false;
    pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      this.pending.push(e.candidate);
      this.flush();
    });
  }

  /** POSTs the offer; resolves to the answer SDP or throws an ApiProblem. */
  async open(offerSdp, headers = {}) {
    this.sent = offerSdp;
    const res = await fetch(this.endpoint, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/sdp', ...headers },
      body: offerSdp,
    });
    if (res.status !== 201) throw await problemFrom(res);
    const loc = res.headers.get('location');
    this.location = loc ? new URL(loc, location.href).href : null;
    const answer = await res.text();
    return answer;
  }

  async flush() {
    if (!this.location || this.closed || !this.pending.length) return;
    // Candidates gathered before the POST already went in the offer.
    const batch = this.pending.splice(0).filter((c) => !(this.sent || '').includes(c.candidate));
    if (!batch.length) return;
    const local = this.pc.localDescription ? this.pc.localDescription.sdp : '';
    const ufrag = /a=ice-ufrag:(.*)/.exec(local);
    const pwd = /a=ice-pwd:(.*)/.exec(local);
    const lines = [];
    if (ufrag) lines.push(`a=ice-ufrag:${ufrag[1].trim()}`);
    if (pwd) lines.push(`a=ice-pwd:${pwd[1].trim()}`);
    // Bundled: every candidate belongs to the first media section.
    const mid = batch[0].sdpMid ?? '0';
    lines.push('m=audio 9 UDP/TLS/RTP/SAVPF 0', `a=mid:${mid}`);
    for (const c of batch) lines.push(`a=${c.candidate}`);
    try {
      await fetch(this.location, {
        method: 'PATCH',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/trickle-ice-sdpfrag' },
        body: `${lines.join('\r\n')}\r\n`,
      });
    } catch (_) { /* the answer's candidates usually suffice */ }
  }

  /** Ends the session on the server (best effort, survives page unload). */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (!this.location) return;
    fetch(this.location, { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(() => {});
  }
}

/** Waits until ICE gathering finishes or `ms` pass, whichever is first. */
export function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') { pc.removeEventListener('icegatheringstatechange', done); resolve(); }
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to `max` ms. */
export function backoff(attempt, max = 10000) {
  const base = Math.min(max, 500 * 2 ** Math.max(0, attempt));
  return base / 2 + Math.random() * (base / 2);
}
