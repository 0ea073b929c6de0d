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


def new_peer(recorder: Recorder):
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    pc.on("track", recorder.on_track)
    return pc


class LiveClient:
    """One viewer over WS /ws/avatars/{id}/session/."""

    def __init__(self, ws_url: str, avatar_id: int, token: str, keep_frames: bool = True):
        self.url = f"{ws_url}/ws/avatars/{avatar_id}/session/"
        self.token = token
        self.recorder = Recorder(keep_frames)
        self.events: list[tuple[float, dict]] = []
        self.pc = None
        self.ws = None
        self.session_id = None
        self._reader = None
        self._waiters: list = []

    async def connect(self, timeout: float = 20.0) -> dict:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, subprotocols=[f"bearer.{self.token}"], open_timeout=10, max_size=2**22)
        first = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        if first.get("type") != "state":
            return first
        self._reader = asyncio.ensure_future(self._read())
        self.pc = new_peer(self.recorder)
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
