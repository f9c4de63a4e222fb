// The WHEP player: plays a broadcast into a <video>, and keeps it playing.
//
// It posts a receive-only offer to /api/v1/broadcasts/{id}/whep. While the
// farmer is not live the server answers 404 `no_publisher`; the player keeps
// asking. Once playing, it watches the connection and the decoded frames:
// when ICE fails or stays disconnected, a track ends, or nothing at all
// arrives for a while, it DELETEs the old session and posts a new offer,
// backing off between tries. It reports what it is doing with `status`
// events so the page can say it in words.

import { SessionResource, iceServersFor, gathered, backoff } from './webrtc.js';

const DISCONNECTED_GRACE_MS = 4000; // 'disconnected' often heals by itself
const STALL_MS = 3000;              // no new frames: say so
const DEAD_MS = 12000;              // no media at all: reconnect
const STATS_EVERY_MS = 1000;

export class WhepPlayer extends EventTarget {
  constructor({ endpoint, video }) {
    super();
    this.endpoint = endpoint;
    this.video = video;
    this.stopped = true;
    this.status = 'idle';
    this.wake = null;
  }

  emit(status, detail = {}) {
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', { detail: { status, ...detail } }));
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.wake) this.wake('stopped');
    if (this.napWake) this.napWake();
  }

  /** Wakes a waiting player now (e.g. the page learned the farmer is live). */
  poke() {
    if (this.napWake) this.napWake();
  }

  async nap(ms) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.napWake = () => { clearTimeout(timer); resolve(); };
    });
    this.napWake = null;
  }

  async loop() {
    let failures = 0;
    let waits = 0;
    while (!this.stopped) {
      const outcome = await this.session(failures > 0);
      if (this.stopped) break;
      switch (outcome.kind) {
        case 'not-live':
          failures = 0;
          this.emit('waiting');
          // Ask often at first (the farmer may be seconds away), then calmly.
          await this.nap(waits++ < 5 ? 2000 : 5000);
          break;
        case 'busy':
          this.emit('busy');
          await this.nap(Math.max(5000, outcome.retryAfter * 1000));
          break;
        case 'fatal':
          this.emit('fatal', { code: outcome.code });
          this.stopped = true;
          break;
        default: // dropped or error: try again, backing off
          waits = 0;
          this.emit('reconnecting');
          await this.nap(backoff(failures++, 8000));
          break;
      }
      if (outcome.kind === 'dropped' && outcome.played) failures = Math.min(failures, 1);
    }
  }

  /** One WHEP session, from offer to its end. Resolves with why it ended. */
  async session(isRetry) {
    // Still waiting for the farmer: keep saying so rather than flickering.
    if (this.status !== 'waiting') this.emit(isRetry ? 'reconnecting' : 'connecting');
    const iceServers = await iceServersFor(this.endpoint);
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    const resource = new SessionResource(this.endpoint, pc);
    const stream = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const tracks = [];
    pc.addEventListener('track', (e) => {
      tracks.push(e.track);
      stream.addTrack(e.track);
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 800);
      const answer = await resource.open(pc.localDescription.sdp);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      resource.flush();
    } catch (problem) {
      pc.close();
      resource.close();
      const code = problem && problem.code;
      if (problem && problem.status === 404 && code === 'no_publisher') return { kind: 'not-live' };
      if (problem && problem.status === 503) return { kind: 'busy', retryAfter: problem.retryAfter || 5 };
      if (problem && (problem.status === 406 || (problem.status === 404 && code === 'not_found'))) {
        return { kind: 'fatal', code };
      }
      return { kind: 'error' };
    }
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    this.play();
    this.pc = pc;
    const outcome = await this.watch(pc, tracks);
    this.pc = null;
    pc.close();
    resource.close();
    return outcome;
  }

  play() {
    const p = this.video.play();
    if (p && p.catch) {
      p.catch(() => this.dispatchEvent(new CustomEvent('needs-tap')));
    }
  }

  /** Resolves when this session should be replaced (or the player stops). */
  watch(pc, tracks) {
    return new Promise((resolve) => {
      let done = false;
      let disconnectedTimer = 0;
      let played = false;
      const finish = (kind) => {
        if (done) return;
        done = true;
        clearTimeout(disconnectedTimer);
        clearInterval(statsTimer);
        this.wake = null;
        resolve({ kind, played });
      };
      this.wake = finish;

      pc.addEventListener('connectionstatechange', () => {
        const s = pc.connectionState;
        if (s === 'failed' || s === 'closed') finish('dropped');
        else if (s === 'disconnected') {
          this.emit('reconnecting');
          clearTimeout(disconnectedTimer);
          disconnectedTimer = setTimeout(() => {
            if (pc.connectionState !== 'connected') finish('dropped');
          }, DISCONNECTED_GRACE_MS);
        } else if (s === 'connected') clearTimeout(disconnectedTimer);
      });
      const watchTrack = (track) => track.addEventListener('ended', () => finish('dropped'));
      tracks.forEach(watchTrack);
      pc.addEventListener('track', (e) => watchTrack(e.track));

      // Media progress: frames decoded (video) and bytes (audio).
      let lastFrames = 0;
      let lastAudio = 0;
      let lastVideoAt = performance.now();
      let lastAnyAt = performance.now();
      let shown = '';
      const statsTimer = setInterval(async () => {
        if (done) return;
        let frames = 0;
        let audio = 0;
        try {
          const report = await pc.getStats();
          report.forEach((s) => {
            if (s.type !== 'inbound-rtp') return;
            if (s.kind === 'video') frames += s.framesDecoded || 0;
            if (s.kind === 'audio') audio += s.bytesReceived || 0;
          });
        } catch (_) { return; }
        const now = performance.now();
        if (frames > lastFrames) { lastVideoAt = now; lastAnyAt = now; }
        if (audio > lastAudio) lastAnyAt = now;
        lastFrames = Math.max(lastFrames, frames);
        lastAudio = Math.max(lastAudio, audio);
        let state;
        if (frames > 0 && now - lastVideoAt < STALL_MS) {
          state = 'playing';
          played = true;
        } else if (played && now - lastAnyAt < STALL_MS) {
          state = 'audio-only';
        } else if (played) {
          state = 'stalled';
        } else {
          state = 'connecting';
        }
        if (state !== shown) {
          shown = state;
          this.emit(state);
        }
        if (now - lastAnyAt > DEAD_MS) finish('dropped');
      }, STATS_EVERY_MS);
    });
  }
}
