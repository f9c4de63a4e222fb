// One broadcast in the studio: go live from this phone (camera preview,
// front/back switch, WHIP publish, signal quality, end), share the link,
// or publish from an app (WHIP URL and stream key, owner only). Below the
// camera: selling (offers), the chat and the viewer count (studio/live.js).

import { $, toast } from '../dom.js';
import { get, post } from '../api.js';
import { t, formatTime } from '../i18n.js';
import { describe } from '../forms.js';
import { shareLink, copyText } from '../share.js';
import { WhipPublisher } from '../whip.js';
import { ctx, show, confirmSheet } from './context.js';
import { mountLive } from './live.js';
import { pausedPicture } from './paused.js';
import { initCockpit, resetCockpit } from './cockpit.js';
import { unlockSound } from './liveorders.js';

// A camera taken by another app (a WeChat video call, the camera app)
// mutes or ends our track. A mute that lasts this long counts as lost.
const MUTE_GRACE_MS = 3000;
// While the camera is lost, ask for it again this often (the other app
// may let go of it by itself).
const CAMERA_RETRY_MS = 4000;

let broadcast = null;
let stream = null;
let facing = 'environment'; // the field, not the farmer's face
let publisher = null;
let wakeLock = null;
let keyLoaded = false;
let stopLive = null;

function unmountLive() {
  if (stopLive) {
    const stop = stopLive;
    stopLive = null;
    stop();
  }
}

/** The room's word on the broadcast's state (e.g. ended elsewhere). */
function roomState(state) {
  if (!broadcast || !state || state === broadcast.state) return;
  // "live" is the publisher's to announce here; an end is always news.
  if (state === 'ended' || (state === 'live' && broadcast.state === 'scheduled')) {
    broadcast.state = state;
    if (state === 'ended') stopCamera();
    renderHead();
    renderButtons();
  }
}

const onAir = () => Boolean(publisher && !publisher.stopped);

function setCamera(status, message) {
  $('camera').dataset.status = status; // off | preview | connecting | live | reconnecting
  $('camera-off').hidden = status !== 'off';
  if (message) $('camera-msg').textContent = message;
}

// ── the camera going away, and coming back ─────────────────────────────
let cameraLost = false;
let unwatchCamera = null; // stops listening to the current tracks
let paused = null;        // the "camera paused" picture viewers see meanwhile
let retryTimer = 0;

/** Tells the farmer what happened, on the preview itself, with the one button that fixes it. */
function alertOnCamera(kind) {
  const box = $('camera-alert');
  box.hidden = !kind;
  box.dataset.kind = kind || '';
  if (!kind) return;
  $('camera-alert-text').textContent = kind === 'replaced'
    ? t('cam.replaced')
    : onAir() ? t('cam.lost_live') : t('cam.lost');
  $('camera-retry').hidden = kind !== 'lost';
  $('take-over').hidden = kind !== 'replaced';
}

function watchCamera() {
  if (unwatchCamera) unwatchCamera();
  unwatchCamera = null;
  const [video] = stream ? stream.getVideoTracks() : [];
  if (!video) return;
  let muteTimer = 0;
  const onEnded = () => loseCamera();
  const onMute = () => {
    clearTimeout(muteTimer);
    muteTimer = setTimeout(() => { if (video.muted) loseCamera(); }, MUTE_GRACE_MS);
  };
  const onUnmute = () => {
    clearTimeout(muteTimer);
    if (cameraLost && video.readyState === 'live') cameraBack();
  };
  video.addEventListener('ended', onEnded);
  video.addEventListener('mute', onMute);
  video.addEventListener('unmute', onUnmute);
  unwatchCamera = () => {
    clearTimeout(muteTimer);
    video.removeEventListener('ended', onEnded);
    video.removeEventListener('mute', onMute);
    video.removeEventListener('unmute', onUnmute);
  };
}

async function loseCamera() {
  if (cameraLost || !stream) return;
  cameraLost = true;
  setCamera('lost');
  alertOnCamera('lost');
  // Viewers see a picture saying the camera paused, not a frozen frame or
  // a player that keeps reconnecting; the broadcast itself goes on.
  if (publisher && !publisher.stopped) {
    paused = pausedPicture();
    try { await publisher.replaceVideoTrack(paused.track); } catch (_) { /* the next camera replaces it */ }
  }
  scheduleCameraRetry();
}

function scheduleCameraRetry() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    if (!cameraLost) return;
    if (document.visibilityState === 'visible') reopenCamera(false);
    else scheduleCameraRetry();
  }, CAMERA_RETRY_MS);
}

/** Asks for the camera (and the microphone, if it went too) again. */
async function reopenCamera(tapped) {
  if (!cameraLost || !stream || reopenCamera.busy) return;
  reopenCamera.busy = true;
  const needAudio = stream.getAudioTracks().every((tr) => tr.readyState === 'ended');
  let fresh;
  try {
    fresh = await navigator.mediaDevices.getUserMedia({
      video: VIDEO(facing),
      audio: needAudio ? AUDIO : false,
    });
  } catch (e) {
    reopenCamera.busy = false;
    if (tapped) error(cameraProblem(e, true));
    scheduleCameraRetry();
    return;
  }
  reopenCamera.busy = false;
  if (!stream) { fresh.getTracks().forEach((tr) => tr.stop()); return; }
  for (const track of fresh.getTracks()) {
    for (const old of track.kind === 'video' ? stream.getVideoTracks() : stream.getAudioTracks()) {
      old.stop();
      stream.removeTrack(old);
    }
    stream.addTrack(track);
    if (publisher && !publisher.stopped) {
      try { await publisher.replaceTrack(track.kind, track); } catch (_) { /* the next reconnect sends it */ }
    }
  }
  cameraBack();
}

function cameraBack() {
  cameraLost = false;
  clearTimeout(retryTimer);
  const [video] = stream.getVideoTracks();
  if (paused) {
    if (publisher && !publisher.stopped && video) publisher.replaceVideoTrack(video).catch(() => {});
    paused.stop();
    paused = null;
  }
  $('preview').srcObject = stream;
  $('preview').play().catch(() => {});
  alertOnCamera(null);
  error('');
  setCamera(onAir() ? 'live' : 'preview');
  watchCamera();
  renderButtons();
  toast(onAir() ? t('cam.back_live') : t('cam.back'));
}

function forgetCameraTrouble() {
  cameraLost = false;
  clearTimeout(retryTimer);
  if (unwatchCamera) unwatchCamera();
  unwatchCamera = null;
  if (paused) { paused.stop(); paused = null; }
  alertOnCamera(null);
}

function error(message) {
  const box = $('live-error');
  box.textContent = message || '';
  box.hidden = !message;
}

function renderHead() {
  const chip = $('live-state-chip');
  chip.dataset.state = broadcast.state;
  $('live-state-word').textContent = t(`state.${broadcast.state}`);
  $('live-title').textContent = broadcast.title;
  $('live-when').textContent = broadcast.scheduled_at ? formatTime(broadcast.scheduled_at) : '';
  $('watch-url').textContent = broadcast.watch_url;
  $('open-viewer').href = broadcast.watch_url;
}

function renderButtons() {
  const ended = broadcast.state === 'ended';
  $('camera-on').hidden = ended || Boolean(stream);
  const replaced = $('camera').dataset.status === 'replaced';
  $('go-live').hidden = ended || !stream || onAir() || replaced;
  $('end-live').hidden = ended || !(onAir() || broadcast.state === 'live');
  $('flip').hidden = !stream || !hasTwoCameras;
  $('onair').hidden = !onAir() || $('camera').dataset.status !== 'live';
  // "正在直播" on the picture says it all; the state chip would repeat it.
  $('live-state-chip').hidden = !$('onair').hidden;
  $('camera').classList.toggle('mirrored', facing === 'user');
  // An ended broadcast has nothing left to share or to stream into.
  $('share-card').hidden = ended;
  $('apps').hidden = ended;
  $('view-live').dataset.phase = ended ? 'ended' : onAir() ? 'live' : stream ? 'preview' : 'idle';
  if (ended) {
    setCamera('off', t('cam.ended'));
    $('quality').hidden = true;
    $('quality-detail').hidden = true;
  }
}

let hasTwoCameras = false;

/** Words for a failed getUserMedia; `again` when the camera worked before. */
function cameraProblem(e, again = false) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return window.isSecureContext ? t('cam.unsupported') : t('cam.insecure');
  }
  if (e && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) return deniedHelp();
  if (e && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError')) return t('cam.none');
  if (e && (e.name === 'NotReadableError' || e.name === 'AbortError')) return t('cam.busy');
  return again ? t('cam.busy') : deniedHelp();
}

/** How to allow the camera, for the browser this page runs in. */
function deniedHelp() {
  const ua = navigator.userAgent;
  if (/MicroMessenger/i.test(ua)) return t('cam.denied_wechat');
  if (/iPhone|iPad/i.test(ua)) return t('cam.denied_ios');
  return t('cam.denied');
}

const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

const VIDEO = (facingMode) => ({
  facingMode: { ideal: facingMode },
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30, max: 30 },
});

async function openCamera() {
  error('');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.RTCPeerConnection) {
    error(cameraProblem());
    return;
  }
  setCamera('off', t('cam.opening'));
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: VIDEO(facing),
      audio: AUDIO,
    });
  } catch (e) {
    setCamera('off', t('cam.off'));
    error(cameraProblem(e));
    return;
  }
  const preview = $('preview');
  preview.srcObject = stream;
  preview.play().catch(() => {});
  setCamera('preview');
  watchCamera();
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    hasTwoCameras = devices.filter((d) => d.kind === 'videoinput').length > 1;
  } catch (_) { hasTwoCameras = false; }
  renderButtons();
}

async function flipCamera() {
  if (!stream) return;
  const next = facing === 'environment' ? 'user' : 'environment';
  const [old] = stream.getVideoTracks();
  // Many phones cannot open two cameras at once: release first.
  if (old) { old.stop(); stream.removeTrack(old); }
  let track;
  try {
    [track] = (await navigator.mediaDevices.getUserMedia({ video: VIDEO(next) })).getVideoTracks();
    facing = next;
  } catch (_) {
    [track] = (await navigator.mediaDevices.getUserMedia({ video: VIDEO(facing) })).getVideoTracks();
  }
  stream.addTrack(track);
  $('preview').srcObject = stream;
  watchCamera();
  if (publisher && !paused) await publisher.replaceVideoTrack(track);
  renderButtons();
}

async function keepScreenOn() {
  try {
    if ('wakeLock' in navigator && document.visibilityState === 'visible' && onAir()) {
      wakeLock = await navigator.wakeLock.request('screen');
    }
  } catch (_) { /* the screen may dim; streaming goes on while the page is open */ }
}

function showQuality(q) {
  const badge = $('quality');
  badge.hidden = false;
  badge.dataset.level = q.level;
  $('quality-word').textContent = t(`q.${q.level}`);
  const detail = $('quality-detail');
  detail.hidden = false;
  detail.textContent = t('q.detail', {
    kbps: q.kbps,
    rtt: q.rttMs ?? '–',
    loss: q.lossPct ?? '–',
  });
}

async function goLive() {
  if (!stream || onAir()) return;
  error('');
  setCamera('connecting');
  $('go-live').disabled = true;
  publisher = new WhipPublisher({
    endpoint: `/api/v1/broadcasts/${encodeURIComponent(broadcast.id)}/whip`,
    stream,
  });
  publisher.addEventListener('live', () => {
    if (cameraLost) return;
    setCamera('live');
    broadcast.state = 'live';
    renderHead();
    renderButtons();
    keepScreenOn();
  });
  publisher.addEventListener('reconnecting', () => {
    if (cameraLost) return;
    setCamera('reconnecting');
    error(t('cam.reconnecting'));
    renderButtons();
  });
  publisher.addEventListener('connected', () => {
    error('');
    // A new connection sends the stream's tracks: while the camera is
    // away, that must be the "camera paused" picture again.
    if (paused) publisher.replaceVideoTrack(paused.track).catch(() => {});
  });
  publisher.addEventListener('replaced', () => {
    // Another phone (or app) publishes this broadcast now. Stay quiet:
    // taking it back is the farmer's one tap, never automatic.
    ctx.leaveGuard = null;
    if (paused) { paused.stop(); paused = null; }
    error('');
    $('quality').hidden = true;
    $('quality-detail').hidden = true;
    setCamera('replaced');
    alertOnCamera('replaced');
    renderButtons();
  });
  publisher.addEventListener('quality', (e) => showQuality(e.detail));
  publisher.addEventListener('ended', () => {
    broadcast.state = 'ended';
    stopCamera();
    error(t('cam.ended_away'));
    renderHead();
    renderButtons();
  });
  try {
    await publisher.start();
  } catch (problem) {
    publisher.stop();
    publisher = null;
    setCamera('preview');
    error(describe(problem));
    if (problem && problem.code === 'broadcast_ended') broadcast.state = 'ended';
  } finally {
    $('go-live').disabled = false;
  }
  ctx.leaveGuard = leaveGuard;
  renderButtons();
}

function stopCamera() {
  forgetCameraTrouble();
  if (publisher) { publisher.stop(); publisher = null; }
  if (stream) stream.getTracks().forEach((tr) => tr.stop());
  stream = null;
  $('preview').srcObject = null;
  if (wakeLock) { wakeLock.release().catch(() => {}); wakeLock = null; }
}

async function endLive() {
  if (!(await confirmSheet(t('cam.end_q'), t('cam.end')))) return;
  try {
    broadcast = await post(`/broadcasts/${encodeURIComponent(broadcast.id)}/end`);
  } catch (problem) {
    error(describe(problem));
    return;
  }
  stopCamera();
  ctx.leaveGuard = null;
  renderHead();
  renderButtons();
  // Offers ended with the broadcast: show the results without the chat.
  unmountLive();
  stopLive = mountLive(broadcast, broadcast.shop.id, { onState: roomState });
}

async function leaveGuard() {
  if (!onAir()) return true;
  const ok = await confirmSheet(t('cam.leave_q'), t('common.ok'));
  if (ok) stopCamera();
  return ok;
}

async function loadKey(rotate) {
  const path = `/broadcasts/${encodeURIComponent(broadcast.id)}/stream-key`;
  try {
    const key = rotate ? await post(path) : await get(path);
    $('whip-url').textContent = key.whip_url;
    $('stream-key').textContent = key.stream_key;
    keyLoaded = true;
    if (rotate) toast(t('apps.rotated'));
  } catch (problem) {
    error(describe(problem));
  }
}

function toggleKey() {
  const key = $('stream-key');
  const shown = key.dataset.shown !== 'true';
  key.dataset.shown = String(shown);
  const word = $('key-show-word');
  word.dataset.i18n = shown ? 'apps.hide' : 'apps.show';
  word.textContent = t(word.dataset.i18n);
}

function fitPreview() {
  const v = $('preview');
  if (!v.videoWidth) return;
  $('camera').classList.toggle('portrait', v.videoHeight > v.videoWidth);
  $('camera').classList.toggle('landscape', v.videoWidth >= v.videoHeight * 1.5);
}

export function init() {
  initCockpit();
  // The new-order chime may only play after the farmer touched the page.
  $('view-live').addEventListener('pointerdown', unlockSound, { once: true });
  $('preview').addEventListener('loadedmetadata', fitPreview);
  $('preview').addEventListener('resize', fitPreview);
  $('camera-on').addEventListener('click', openCamera);
  $('go-live').addEventListener('click', goLive);
  $('end-live').addEventListener('click', endLive);
  $('flip').addEventListener('click', () => flipCamera().catch((e) => error(cameraProblem(e))));
  $('camera-retry').addEventListener('click', () => reopenCamera(true));
  $('take-over').addEventListener('click', () => {
    alertOnCamera(null);
    goLive();
  });
  $('share-link').addEventListener('click', () => shareLink({
    url: broadcast.watch_url,
    title: broadcast.title,
    text: t('share.text', { shop: broadcast.shop.name, title: broadcast.title }),
  }));
  $('apps').addEventListener('toggle', () => { if ($('apps').open && !keyLoaded) loadKey(false); });
  $('key-show').addEventListener('click', toggleKey);
  $('key-rotate').addEventListener('click', async () => {
    if (await confirmSheet(t('apps.rotate_q'), t('apps.rotate'))) await loadKey(true);
  });
  document.querySelectorAll('[data-copy]').forEach((b) => b.addEventListener('click', async () => {
    const text = $(b.dataset.copy).textContent;
    if (text && await copyText(text)) toast(t('common.copied'));
  }));
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible') return;
    keepScreenOn();
    // Back from the app that took the camera: try at once.
    if (cameraLost) reopenCamera(false);
  });
  window.addEventListener('beforeunload', (e) => {
    if (onAir()) { e.preventDefault(); e.returnValue = ''; }
  });
  document.addEventListener('langchange', () => {
    if (broadcast && !$('view-live').hidden) { renderHead(); renderButtons(); }
  });
}

export async function view(broadcastId) {
  broadcast = await get(`/broadcasts/${encodeURIComponent(broadcastId)}`);
  keyLoaded = false;
  $('apps').open = false;
  $('whip-url').textContent = '';
  $('stream-key').textContent = '';
  $('stream-key').dataset.shown = 'false';
  $('quality').hidden = true;
  $('quality-detail').hidden = true;
  error('');
  forgetCameraTrouble();
  setCamera('off', t('cam.off'));
  resetCockpit();
  renderHead();
  renderButtons();
  show('view-live');
  unmountLive();
  stopLive = mountLive(broadcast, broadcast.shop.id, { onState: roomState });
  ctx.cleanup = () => { stopCamera(); unmountLive(); };
}
