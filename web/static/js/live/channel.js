// The live channel: one websocket per page to
// /api/v1/broadcasts/{id}/live (protocol in docs/protocol.md).
//
// It keeps itself connected: after a drop it reconnects with backoff and
// `resume_from` = the highest `seq` seen, so the server replays what was
// missed (or sends a fresh snapshot). Close codes decide what happens next:
// 4001 (banned) stops for good, 1001 (server restarting) comes back after a
// short random pause, everything else backs off. A dead link that never
// closes (a phone switching from Wi-Fi to 4G) is found by an application
// ping that goes unanswered.
//
// Modules subscribe to message types with on('chat', fn); on('*', fn) sees
// everything. 'status' events report 'connecting' | 'open' | 'reconnecting'
// | 'banned' | 'stopped'.

const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const MAX_BACKOFF_MS = 30000;

export class LiveChannel {
  constructor(broadcastId) {
    this.broadcastId = broadcastId;
    this.seq = 0;
    this.hello = null;
    this.status = 'idle';
    this.socket = null;
    this.failures = 0;
    this.handlers = new Map();
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.pingId = 0;
    this.stopped = true;
    this.onOnline = () => { if (this.status === 'reconnecting') this.connectNow(); };
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && this.status === 'reconnecting') this.connectNow();
    };
  }

  /** Subscribes to a message type ('*' for all, 'status' for the state). */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  emit(type, payload) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(payload);
      } catch (e) {
        // One module's bug must not stop the others from hearing the room.
        setTimeout(() => { throw e; });
      }
    }
  }

  setStatus(status, detail) {
    this.status = status;
    this.emit('status', { status, ...detail });
  }

  get open() {
    return this.status === 'open';
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopPinging();
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    if (this.socket) {
      const s = this.socket;
      this.socket = null;
      s.close(1000, 'leaving');
    }
    this.setStatus('stopped');
  }

  /**
   * Connects again at once, resuming where this one left off: after the
   * visitor picked a nickname, so the new hello says they may chat and buy.
   */
  reconnect() {
    if (this.stopped) return;
    this.connectNow();
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    if (this.socket) {
      const s = this.socket;
      this.socket = null;
      s.close(1000, 'reconnecting');
    }
    this.connect();
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const resume = this.seq > 0 ? `?resume_from=${this.seq}` : '';
    return `${scheme}://${location.host}/api/v1/broadcasts/${encodeURIComponent(this.broadcastId)}/live${resume}`;
  }

  connect() {
    if (this.stopped) return;
    this.setStatus(this.failures === 0 && !this.hello ? 'connecting' : 'reconnecting');
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch (_) {
      this.retry(null);
      return;
    }
    this.socket = socket;
    socket.addEventListener('message', (e) => {
      if (this.socket !== socket) return;
      this.receive(e.data);
    });
    socket.addEventListener('close', (e) => {
      if (this.socket !== socket) return; // replaced on purpose
      this.socket = null;
      this.stopPinging();
      this.retry(e);
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    if (typeof msg.seq === 'number' && msg.seq > this.seq) this.seq = msg.seq;
    this.armPong();
    if (msg.type === 'hello') {
      this.hello = msg;
      this.failures = 0;
      this.setStatus('open');
      this.startPinging();
    }
    this.emit(msg.type, msg);
    this.emit('*', msg);
  }

  /** Sends a client message; false when not connected (nothing is queued). */
  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN || this.status !== 'open') return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  retry(closeEvent) {
    if (this.stopped) return;
    const code = closeEvent ? closeEvent.code : 0;
    if (code === 4001) {
      // Banned from this shop: reconnecting would only be refused again.
      this.stopped = true;
      this.setStatus('banned');
      return;
    }
    let delay;
    if (code === 1001) {
      // The server is restarting: everyone comes back, so spread out.
      delay = 500 + Math.random() * 2500;
    } else {
      const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.failures, 5));
      delay = base / 2 + Math.random() * (base / 2);
    }
    this.failures += 1;
    this.setStatus('reconnecting', { code, reason: closeEvent ? closeEvent.reason : '', inMs: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startPinging() {
    this.stopPinging();
    this.pingTimer = setInterval(() => {
      if (this.send({ type: 'ping', id: ++this.pingId })) {
        clearTimeout(this.pongTimer);
        this.pongTimer = setTimeout(() => {
          // Nothing came back: the link is dead even though it never closed.
          if (this.socket) this.connectNow();
        }, PONG_WITHIN_MS);
      }
    }, PING_EVERY_MS);
  }

  armPong() {
    clearTimeout(this.pongTimer);
  }

  stopPinging() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}

let counter = 0;
/** A nonce unique to this page: time, a counter and a little randomness. */
export function nonce(prefix) {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}
