#!/usr/bin/env python3
"""A WHIP publisher or WHEP viewer built on aiortc, a WebRTC stack that shares
no code with ours (Python, libsrtp, its own ICE and DTLS).

    aiortc_peer.py publish URL TOKEN SECONDS [vp8|h264]
    aiortc_peer.py view URL SECONDS

`publish` sends a moving test picture (320x240, 15 fps) and a tone; `view`
decodes what arrives. Each prints one JSON line with what it saw, then ends
its session with DELETE. Exit status 0 unless the HTTP exchange failed.
"""

import asyncio
import fractions
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import array

import av
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)

WIDTH, HEIGHT, FPS = 320, 240, 15


class MovingPicture(VideoStreamTrack):
    """A bar that moves across the picture, so every frame differs."""

    def __init__(self):
        super().__init__()
        self.count = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        x = (self.count * 4) % (WIDTH - 16)
        self.count += 1
        row = bytes([40] * x + [220] * 16 + [40] * (WIDTH - 16 - x))
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        planes = frame.planes
        planes[0].update(fill(planes[0], row, HEIGHT))
        planes[1].update(bytes([128]) * planes[1].buffer_size)
        planes[2].update(bytes([128]) * planes[2].buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


def fill(plane, row, rows):
    """A luma plane of `rows` copies of `row`, padded to the plane's stride."""
    line = row + bytes(plane.line_size - len(row))
    return line * rows


class Tone(MediaStreamTrack):
    """440 Hz, 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.samples = 0
        self.start = None

    async def recv(self):
        rate, n = 48000, 960
        if self.start is None:
            self.start = time.time()
        wait = self.start + self.samples / rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = array.array(
            "h",
            (int(8000 * math.sin(2 * math.pi * 440 * (i + self.samples) / rate)) for i in range(n)),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = rate
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, rate)
        self.samples += n
        return frame


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def exchange(pc, url, token):
    """Offer (with every candidate: aiortc gathers before it answers), answer."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, res_headers, body = await asyncio.to_thread(
        http, "POST", url, pc.localDescription.sdp.encode(), headers
    )
    if status != 201:
        print(json.dumps({"error": f"HTTP {status}", "body": body.decode(errors="replace")}))
        sys.exit(1)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body.decode(), type="answer"))
    location = res_headers.get("Location") or res_headers.get("location")
    return urllib.parse.urljoin(url, location) if location else None


def prefer(transceiver, mime):
    codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    chosen = [c for c in codecs if c.mimeType.lower() == mime]
    if chosen:
        transceiver.setCodecPreferences(chosen)


async def publish(url, token, seconds, codec):
    pc = RTCPeerConnection()
    video = pc.addTransceiver(MovingPicture(), direction="sendonly")
    prefer(video, f"video/{codec}")
    pc.addTransceiver(Tone(), direction="sendonly")
    session = await exchange(pc, url, token)
    await asyncio.sleep(seconds)
    print(json.dumps({"connection": pc.connectionState}), flush=True)
    if session:
        await asyncio.to_thread(http, "DELETE", session)
    await pc.close()


async def view(url, seconds):
    pc = RTCPeerConnection()
    seen = {"video_frames": 0, "audio_frames": 0, "width": 0, "height": 0, "distinct": 0}
    tasks = []

    async def consume(track):
        last = None
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if track.kind == "video":
                seen["video_frames"] += 1
                seen["width"], seen["height"] = frame.width, frame.height
                # A decoded picture that changed: real video, not a frozen frame.
                digest = bytes(frame.planes[0])[:: 16 * 7]
                if digest != last:
                    seen["distinct"] += 1
                last = digest
            else:
                seen["audio_frames"] += 1

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(consume(track)))

    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    session = await exchange(pc, url, None)
    await asyncio.sleep(seconds)
    seen["connection"] = pc.connectionState
    print(json.dumps(seen), flush=True)
    if session:
        await asyncio.to_thread(http, "DELETE", session)
    await pc.close()
    for t in tasks:
        t.cancel()


def main():
    mode = sys.argv[1]
    if mode == "publish":
        codec = sys.argv[5] if len(sys.argv) > 5 else "vp8"
        asyncio.run(publish(sys.argv[2], sys.argv[3], float(sys.argv[4]), codec))
    elif mode == "view":
        asyncio.run(view(sys.argv[2], float(sys.argv[3])))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
