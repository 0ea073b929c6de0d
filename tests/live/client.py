"""A viewer made of aiortc, for tests and the benchmark: opens a live session over the
signaling WebSocket (or the HTTP proxy) and records what arrives.

It offers loopback host candidates only and uses no STUN/TURN server, like the worker.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np


def loopback_only_ice() -> None:
    from lipsync_worker.live.ice import install_host_addresses

    install_host_addresses(["127.0.0.1"])


class Recorder:
    def __init__(self, keep_frames: bool = True):
        self.video: list[tuple[float, int]] = []  # (arrival, pts)
        self.frames: list[np.ndarray] = []  # grey, half size
        self.audio: list[tuple[float, int, float]] = []  # (arrival, pts, rms)
        self.keep_frames = keep_frames
        self.tasks: list[asyncio.Task] = []

    def on_track(self, track) -> None:
        self.tasks.append(asyncio.ensure_future(self._video(track) if track.kind == "video" else self._audio(track)))

    async def _video(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.video.append((time.monotonic(), frame.pts))
            if self.keep_frames:
                grey = frame.to_ndarray(format="gray")
                self.frames.append(grey[::2, ::2].copy())

    async def _audio(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = frame.to_ndarray().astype(np.float32)
            self.audio.append((time.monotonic(), frame.pts, float(np.sqrt(np.mean(samples**2)))))

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


class Microphone:
    """A student's microphone for the aiortc viewer: sends silence in real time (20 ms frames
    at 48 kHz, like a browser) and, when told, the speech given; says when it has sent it."""

    RATE = 48000
    FRAME = 960

    def __init__(self):
        from aiortc.mediastreams import MediaStreamTrack

        mic = self

        class _Track(MediaStreamTrack):
            kind = "audio"

            async def recv(self):
                return await mic._next_frame()

        self.track = _Track()
        self._pending = np.zeros(0, np.int16)
        self._sent = 0
        self._start: float | None = None
        self._done: list[tuple[int, asyncio.Future]] = []

    def say(self, pcm: np.ndarray, sample_rate: int = 16000) -> asyncio.Future:
        """Queue `pcm` (float32 in [-1, 1]); the future gets time.monotonic() when its last
        sample has been sent (the end of the student's speech)."""
        from scipy.signal import resample_poly

        audio = resample_poly(pcm, self.RATE, sample_rate) if sample_rate != self.RATE else pcm
        audio = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
        self._pending = np.concatenate([self._pending, audio])
        future = asyncio.get_running_loop().create_future()
        self._done.append((self._sent + len(self._pending), future))
        return future

    async def _next_frame(self):
        import av

        now = time.monotonic()
        if self._start is None:
            self._start = now
        wait = self._start + self._sent / self.RATE - now
        if wait > 0:
            await asyncio.sleep(wait)
        take, self._pending = self._pending[: self.FRAME], self._pending[self.FRAME :]
        samples = np.zeros(self.FRAME, np.int16)
        samples[: len(take)] = take
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.RATE
        frame.pts = self._sent
        from fractions import Fraction

        frame.time_base = Fraction(1, self.RATE)
        self._sent += self.FRAME
        for end, future in list(self._done):
            if self._sent >= end:
                self._done.remove((end, future))
                if not future.done():
                    future.set_result(time.monotonic())
        return frame


def new_peer(recorder: Recorder, microphone: Microphone | None = None, video_codecs: list[str] | None = None):
    """`video_codecs`: the video codecs to offer, in order (e.g. ["VP8", "H264"], as browsers
    do); None: aiortc's default list."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pc.addTransceiver("video", direction="recvonly")
    if video_codecs is not None:
        caps = RTCRtpSender.getCapabilities("video").codecs
        names = [f"video/{name}".lower() for name in [*video_codecs, "rtx"]]
        video.setCodecPreferences([c for name in names for c in caps if c.mimeType.lower() == name])
    if microphone is not None:
        pc.addTrack(microphone.track)  # sendrecv: the avatar hears it
    else:
        pc.addTransceiver("audio", direction="recvonly")
    pc.on("track", recorder.on_track)
    return pc


class LiveClient:
    """One viewer over WS /ws/avatars/{id}/session/."""

    def __init__(
        self,
        ws_url: str,
        avatar_id: int,
        token: str,
        keep_frames: bool = True,
        microphone: Microphone | None = None,
        protocol: str = "bearer",  # "token": a student's session token
        video_codecs: list[str] | None = None,  # offered, in order; None: aiortc's default
    ):
        self.url = f"{ws_url}/ws/avatars/{avatar_id}/session/"
        self.token = token
        self.protocol = protocol
        self.recorder = Recorder(keep_frames)
        self.microphone = microphone
        self.video_codecs = video_codecs
        self.events: list[tuple[float, dict]] = []
        self.pc = None
        self.ws = None
        self.session_id = None
        self._reader = None
        self._waiters: list = []

    async def connect(self, timeout: float = 20.0) -> dict:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.url, subprotocols=[f"{self.protocol}.{self.token}"], open_timeout=10, max_size=2**22
        )
        first = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        if first.get("type") != "state":
            return first
        self._reader = asyncio.ensure_future(self._read())
        self.pc = new_peer(self.recorder, self.microphone, self.video_codecs)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp})
        answer = await self.wait_event(lambda e: e["type"] in ("answer", "error"), timeout)
        if answer["type"] == "error":
            return answer
        from aiortc import RTCSessionDescription

        self.session_id = answer["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return answer

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                event = json.loads(raw)
                self.events.append((time.monotonic(), event))
                for predicate, future in list(self._waiters):
                    if not future.done() and predicate(event):
                        future.set_result(event)
        except Exception:  # noqa: BLE001 - closed
            pass

    async def wait_event(self, predicate, timeout: float = 20.0) -> dict:
        for _t, event in self.events:
            if predicate(event) and not event.get("_seen"):
                event["_seen"] = True
                return event
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            event = await asyncio.wait_for(future, timeout)
            event["_seen"] = True
            return event
        finally:
            self._waiters.remove((predicate, future))

    async def send(self, message: dict) -> float:
        await self.ws.send(json.dumps(message))
        return time.monotonic()

    async def close(self, bye: bool = True) -> None:
        if bye and self.ws is not None:
            try:
                await self.send({"type": "bye"})
                await self.wait_event(lambda e: e.get("type") == "state" and e.get("state") == "closed", 5)
            except Exception:  # noqa: BLE001
                pass
        if self.pc is not None:
            await self.pc.close()
        self.recorder.stop()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


def fps_between(video: list[tuple[float, int]], start: float, end: float) -> float:
    n = sum(1 for t, _ in video if start <= t <= end)
    return n / (end - start)


def loud(rms: float) -> bool:
    return rms > 300.0  # int16 RMS; Opus-decoded silence is ~0


def mouth_motion(frames: list[np.ndarray], idle: list[np.ndarray]) -> list[float]:
    """Per received frame: the largest 8x8-block difference to the idle frame it matches
    best. Idle frames differ only by codec noise; speaking frames differ at the mouth."""
    idle_stack = np.stack(idle).astype(np.float32)
    scores = []
    for frame in frames:
        f = frame.astype(np.float32)
        best = idle_stack[np.argmin(np.abs(idle_stack - f).mean(axis=(1, 2)))]
        diff = np.abs(best - f)
        h, w = (diff.shape[0] // 8) * 8, (diff.shape[1] // 8) * 8
        blocks = diff[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
        scores.append(float(blocks.max()))
    return scores


async def first_loud_after(client, since: float, timeout: float = 15.0) -> float | None:
    """When the viewer first heard sound after `since` (time.monotonic()), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hit = next((t for t, _p, r in client.recorder.audio if t > since and loud(r)), None)
        if hit is not None:
            return hit
        await asyncio.sleep(0.01)
    return None
