// The WHIP publisher: sends the phone's camera and microphone to
// /api/v1/broadcasts/{id}/whip with the owner's session cookie (the page is
// same-origin, so no stream key is needed), and keeps it up.
//
// Simulcast: three layers (quarter, half, full resolution) when the browser
// accepts three send encodings; one plain encoding otherwise.
//
// Codec: H.264 constrained baseline first (phones encode and decode it in
// hardware, iPhones everywhere), then VP8, with or without simulcast.
// SIMULCAST_PREFERS_H264 = false would prefer VP8 when simulcasting (the
// SFU once stalled on Chrome's padded H.264 layers; see docs/media.md).
//
// A dropped connection is re-published with a new POST: the server replaces
// the old publisher and viewers keep watching, as long as we are back
// within its grace period (10 s by default). Before that it asks whether
// its own session still exists (a PATCH with its own ICE credentials,
// which is not a restart): 404 while the broadcast has a publisher means
// another device took over (`replaced`), and this page stops instead of
// taking the stream back, so two phones never fight over it.

import { SessionResource, iceServersFor, gathered, backoff } from './webrtc.js';
import { classify, sample } from './quality.js';

const LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];
const SINGLE = [{ maxBitrate: 1_200_000 }];
const DISCONNECTED_GRACE_MS = 2500;
const SIMULCAST_PREFERS_H264 = true;
// A takeover's new publisher may still be connecting when we look: look
// twice, this far apart, before deciding nobody else is publishing.
const SECOND_LOOK_MS = 2500;

function preferCodecs(transceiver, simulcast) {
  if (!window.RTCRtpSender || !RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
  const caps = RTCRtpSender.getCapabilities('video');
  if (!caps) return;
  const vp8First = simulcast && !SIMULCAST_PREFERS_H264;
  const rank = (c) => {
    const mime = c.mimeType.toLowerCase();
    const fmtp = (c.sdpFmtpLine || '').toLowerCase();
    if (mime === 'video/vp8') return vp8First ? -1 : 2;
    if (mime === 'video/h264' && fmtp.includes('packetization-mode=1') && /profile-level-id=42e0/.test(fmtp)) return 0;
    if (mime === 'video/h264' && fmtp.includes('packetization-mode=1') && /profile-level-id=42/.test(fmtp)) return 1;
    if (mime === 'video/rtx' || mime === 'video/red' || mime === 'video/ulpfec') return 3;
    return 4;
  };
  const ordered = [...caps.codecs].sort((a, b) => rank(a) - rank(b));
  try { transceiver.setCodecPreferences(ordered); } catch (_) { /* keep the browser's order */ }
}

/** Adds the camera track with simulcast if this browser can, else plainly. */
function addVideo(pc, track, stream, simulcast) {
  const t = pc.addTransceiver(track, {
    direction: 'sendonly',
    streams: [stream],
    sendEncodings: simulcast ? LAYERS : SINGLE,
  });
  preferCodecs(t, simulcast);
  return t;
}

export class WhipPublisher extends EventTarget {
  constructor({ endpoint, stream }) {
    super();
    this.endpoint = endpoint;
    this.stream = stream;
    this.pc = null;
    this.resource = null;
    this.stopped = true;
    this.simulcast = null;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Starts publishing; resolves once the first connection is up. */
  async start() {
    this.stopped = false;
    await this.connect();
  }

  /** Sends another track (another camera, a new microphone) without renegotiating. */
  async replaceTrack(kind, track) {
    const transceiver = this.pc && this.pc.getTransceivers().find((t) => t.sender && (t.sender.track ? t.sender.track.kind : t.receiver.track.kind) === kind);
    if (transceiver) await transceiver.sender.replaceTrack(track);
  }

  replaceVideoTrack(track) {
    return this.replaceTrack('video', track);
  }

  async connect() {
    const iceServers = await iceServersFor(this.endpoint);
    let pc = null;
    let offer = null;
    // Try simulcast first; a browser that cannot do it either throws or
    // silently keeps one encoding, and then we start over without it.
    for (const simulcast of this.simulcast === false ? [false] : [true, false]) {
      pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
      try {
        const [video] = this.stream.getVideoTracks();
        const [audio] = this.stream.getAudioTracks();
        if (video) {
          const t = addVideo(pc, video, this.stream, simulcast);
          if (simulcast && (t.sender.getParameters().encodings || []).length < LAYERS.length) {
            throw new Error('no simulcast');
          }
        }
        if (audio) pc.addTransceiver(audio, { direction: 'sendonly', streams: [this.stream] });
        offer = await pc.createOffer();
        if (simulcast && video && !/a=simulcast:/.test(offer.sdp)) throw new Error('no simulcast');
        this.simulcast = simulcast;
        break;
      } catch (e) {
        pc.close();
        pc = null;
        if (!simulcast) throw e;
      }
    }
    await pc.setLocalDescription(offer);
    await gathered(pc, 800);
    const resource = new SessionResource(this.endpoint, pc);
    try {
      const answer = await resource.open(pc.localDescription.sdp);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      resource.flush();
    } catch (e) {
      pc.close();
      resource.close();
      throw e;
    }
    const old = this.resource;
    const oldPc = this.pc;
    this.pc = pc;
    this.resource = resource;
    // The new session has replaced the old one on the server; tidy up.
    if (old) old.close();
    if (oldPc) oldPc.close();
    this.watch(pc);
    this.emit('connected', { simulcast: this.simulcast });
  }

  watch(pc) {
    let timer = 0;
    const lost = () => {
      if (this.pc !== pc || this.stopped) return;
      this.reconnect();
    };
    pc.addEventListener('connectionstatechange', () => {
      const s = pc.connectionState;
      if (s === 'connected') {
        clearTimeout(timer);
        this.emit('live');
      } else if (s === 'failed' || s === 'closed') {
        lost();
      } else if (s === 'disconnected') {
        this.emit('reconnecting');
        clearTimeout(timer);
        timer = setTimeout(() => { if (pc.connectionState !== 'connected') lost(); }, DISCONNECTED_GRACE_MS);
      }
    });
    if (pc.connectionState === 'connected') this.emit('live');
    this.statsLoop(pc);
  }

  /**
   * Why our connection went: 'ours' (the server still holds our session:
   * the network dropped), 'replaced' (another device publishes now),
   * 'gone' (no session and nobody publishing: a restart, or our grace ran
   * out) or 'offline' (the server cannot be reached).
   */
  async whyLost() {
    const resource = this.resource;
    const sdp = this.pc && this.pc.localDescription ? this.pc.localDescription.sdp : '';
    const ufrag = /a=ice-ufrag:(\S+)/.exec(sdp);
    const pwd = /a=ice-pwd:(\S+)/.exec(sdp);
    if (!resource || !resource.location || !ufrag || !pwd) return 'gone';
    let res;
    try {
      res = await fetch(resource.location, {
        method: 'PATCH',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/trickle-ice-sdpfrag' },
        body: `a=ice-ufrag:${ufrag[1]}\r\na=ice-pwd:${pwd[1]}\r\n`,
      });
    } catch (_) {
      return 'offline';
    }
    if (res.status !== 404) return res.ok ? 'ours' : 'offline';
    for (let look = 0; look < 2; look++) {
      if (look) await new Promise((r) => setTimeout(r, SECOND_LOOK_MS));
      if (this.stopped) return 'gone';
      try {
        const stats = await fetch(this.endpoint.replace(/\/whip$/, '/stats'), { credentials: 'same-origin' });
        if (!stats.ok) return 'gone';
        if ((await stats.json()).publisher) return 'replaced';
      } catch (_) {
        return 'offline';
      }
    }
    return 'gone';
  }

  async reconnect() {
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.emit('reconnecting');
    if ((await this.whyLost()) === 'replaced' && !this.stopped) {
      this.stopped = true;
      if (this.pc) this.pc.close();
      this.pc = null;
      // Our session is gone already; nothing to DELETE.
      this.resource = null;
      this.reconnecting = false;
      this.emit('replaced');
      return;
    }
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.connect();
        break;
      } catch (problem) {
        if (problem && (problem.code === 'broadcast_ended' || problem.status === 401 || problem.status === 403)) {
          this.stopped = true;
          this.emit('ended', { code: problem.code });
          break;
        }
        await new Promise((r) => setTimeout(r, backoff(attempt, 4000)));
      }
    }
    this.reconnecting = false;
  }

  async statsLoop(pc) {
    let previous = null;
    while (this.pc === pc && !this.stopped) {
      await new Promise((r) => setTimeout(r, 2000));
      if (this.pc !== pc || pc.connectionState !== 'connected') continue;
      try {
        const result = sample(await pc.getStats(), previous);
        previous = result.now;
        if (result.stats) this.emit('quality', { ...result.stats, level: classify(result.stats) });
      } catch (_) { /* next time */ }
    }
  }

  /** Stops sending and ends the session (the server then starts its grace period). */
  stop() {
    this.stopped = true;
    if (this.resource) this.resource.close();
    if (this.pc) this.pc.close();
    this.pc = null;
    this.resource = null;
  }
}
