"""Classroom mode: one host session's picture and sound sent to many viewers.

A broadcast hangs off the host's live session (session.py): it listens to the ticks the
session's clock shows and to the events the session sends. Each tick is encoded once
(H.264 with libx264, Opus with libopus) on one thread of its own, and the packets are
handed to every viewer's peer connection, whose aiortc senders only packetize, encrypt
and send them (`RTCRtpSender` calls the codec's `pack` for an `av.Packet` instead of
encoding). So a viewer costs its packets' trip through aiortc, not an encoder.

- Video keyframes: every KEYFRAME_SECONDS, when a viewer joins, and when a viewer asks for
  one (RTCP PLI/FIR), at most one forced keyframe per KEYFRAME_MIN_INTERVAL. A viewer
  receives nothing until its first keyframe.
- Viewers must receive H.264 (packetization-mode 1) and Opus; a viewer whose offer has
  neither is refused with the reason. They send nothing that is heard.
- Events to viewers (speech started, its words, speech ended, the viewer count, the end)
  go to a channel-layer group the viewers' sockets join (one Redis call for all of them).
- The broadcast ends with the host's session (viewers get `ended`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from django.conf import settings

from avatars.broadcast_services import broadcast_forget, broadcast_group_name
from contracts.errors import ServiceError, TooManyRequests

from ..engines.base import FPS, SAMPLES_PER_FRAME
from .codecs import h264_context, voice_opus_context, voice_packets
from .frames import picture_size
from .tracks import VIDEO_TIME_BASE, audio_frame, video_frame

logger = logging.getLogger(__name__)

VIDEO_BITRATE = 900_000
KEYFRAME_SECONDS = 2.0
KEYFRAME_MIN_INTERVAL = 0.5
# Ticks waiting for the encoder thread: beyond this the picture of a tick is dropped (its
# sound never is), so a starved machine shows fewer frames instead of a growing delay.
MAX_ENCODE_BACKLOG = 3
# Packets waiting in one viewer's sender; a viewer that cannot keep up loses the queued
# video and waits for the next keyframe.
MAX_VIEWER_QUEUE = 25
# The session events viewers see (the host's transcripts, answers and errors are its own;
# `draining`: the worker is shutting down, the broadcast ends with the host's session).
VIEWER_EVENTS = ("speaking_started", "word", "speaking_ended", "draining")


class PacketTrack(MediaStreamTrack):
    """One viewer's track of already-encoded packets (`recv` returns an `av.Packet`)."""

    def __init__(self, kind: str, on_keyframe_needed):
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue = asyncio.Queue()
        self._on_keyframe_needed = on_keyframe_needed
        self.waiting_keyframe = kind == "video"

    def push(self, packet: av.Packet, keyframe: bool = False) -> None:
        if self.readyState != "live":
            return
        if self.waiting_keyframe:
            if not keyframe:
                return
            self.waiting_keyframe = False
        if self._queue.qsize() >= MAX_VIEWER_QUEUE:
            while not self._queue.empty():
                self._queue.get_nowait()
            if self.kind == "video":  # a P-frame without its predecessors is garbage
                self.waiting_keyframe = not keyframe
                if self.waiting_keyframe:
                    self._on_keyframe_needed()
                    return
        self._queue.put_nowait(packet)

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()


class SharedEncoder:
    """The broadcast's encoders (H.264 and Opus), run for each tick on one thread of their
    own in tick order; the packets go to `deliver(video, audio)` on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver, name: str = ""):
        self.loop = loop
        self._deliver = deliver
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"broadcast-{name}")
        self._video = None
        self._size: tuple[int, int] | None = None
        self._audio = None
        self._backlog = 0
        self._last_tick: int | None = None
        self._audio_pts = 0
        self._keyframe_wanted = True
        self._last_keyframe = 0.0
        self.closed = False
        self.stats = {
            "frames": 0,
            "dropped": 0,
            "keyframes": 0,
            "encode_cpu_seconds": 0.0,
            # Sent to all viewers together: encoded frames, Opus packets, RTP packets (bench_broadcast).
            "video_frames_out": 0,
            "audio_packets_out": 0,
            "rtp_packets_out": 0,
        }

    def keyframe(self) -> None:
        """Make one of the next frames a keyframe (a viewer joined or lost packets)."""
        self._keyframe_wanted = True

    def feed(self, picture: np.ndarray, pcm: np.ndarray, tick: int) -> None:
        """On the event loop, each tick the host's clock shows."""
        if self.closed:
            return
        # Sound follows the tick counter: ticks the clock skipped leave a gap in the timestamps too.
        if self._last_tick is not None and tick > self._last_tick + 1:
            self._audio_pts += (tick - self._last_tick - 1) * SAMPLES_PER_FRAME
        self._last_tick = tick
        audio_pts, self._audio_pts = self._audio_pts, self._audio_pts + SAMPLES_PER_FRAME
        with_video = self._backlog < MAX_ENCODE_BACKLOG
        if not with_video:
            self.stats["dropped"] += 1
        self._backlog += 1
        future = self.loop.run_in_executor(
            self._thread, self._encode, picture if with_video else None, pcm, tick, audio_pts
        )
        future.add_done_callback(self._encoded)

    def _encoded(self, future) -> None:
        self._backlog -= 1
        if self.closed or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            logger.error("Broadcast encoder failed", exc_info=error)
            return
        video, audio = future.result()
        self._deliver(video, audio)

    def _video_codec(self, size: tuple[int, int]):
        """The encoder for pictures of `size` (the clock's are the sent size already)."""
        if self._video is None or self._size != size:
            # As a session's (the operator's quality and bit rate ceiling), once per tick for everyone.
            codec = h264_context(*size, min(VIDEO_BITRATE, settings.LIVE_VIDEO_MAX_BITRATE))
            codec.time_base = VIDEO_TIME_BASE  # the packets keep the frames' 90 kHz timestamps
            codec.gop_size = int(KEYFRAME_SECONDS * FPS)  # a viewer that lost packets recovers by the next one
            self._video, self._size = codec, size
            self._keyframe_wanted = True
        return self._video

    def _audio_codec(self):
        if self._audio is None:
            self._audio = voice_opus_context()
        return self._audio

    def _encode(self, picture, pcm, tick: int, audio_pts: int):
        """On the encoder thread: ([(video packet, keyframe)], [audio packets])."""
        started = time.thread_time()  # the encoder's CPU, whatever else the machine runs
        video = []
        if picture is not None:
            codec = self._video_codec(picture_size(picture))
            frame = video_frame(picture, tick)
            now = time.monotonic()
            if self._keyframe_wanted and now - self._last_keyframe >= KEYFRAME_MIN_INTERVAL:
                self._keyframe_wanted = False
                frame.pict_type = av.video.frame.PictureType.I
            for packet in codec.encode(frame):
                packet.time_base = VIDEO_TIME_BASE
                if packet.is_keyframe:
                    self._last_keyframe = now
                    self.stats["keyframes"] += 1
                video.append((packet, packet.is_keyframe))
            self.stats["frames"] += 1
        audio = voice_packets(self._audio_codec(), audio_frame(pcm, audio_pts))
        self.stats["encode_cpu_seconds"] += time.thread_time() - started
        return video, audio

    def close(self) -> None:
        self.closed = True
        self._thread.shutdown(wait=False, cancel_futures=True)


def _offer_codecs_check(sdp: str) -> None:
    """A clear refusal for an offer this broadcast cannot serve (before aiortc's own)."""
    kinds = {line.split()[0][2:] for line in sdp.splitlines() if line.startswith("m=")}
    if not {"audio", "video"} <= kinds:
        raise ServiceError("The offer must receive both audio and video (add recvonly transceivers for both).")
    lower = sdp.lower()
    if "h264/90000" not in lower:
        raise ServiceError(
            "A broadcast is sent as H.264 video, which this viewer's offer does not accept; "
            "use a browser or client that receives H.264 (Chromium, Chrome, Edge, Safari, Firefox, aiortc)."
        )
    if "opus/48000" not in lower:
        raise ServiceError("A broadcast's sound is Opus, which this viewer's offer does not accept.")


def _codec_preferences(kind: str) -> list:
    """H.264 (constrained baseline first) for video, Opus for audio: what the shared encoders make."""
    from aiortc import RTCRtpSender

    codecs = RTCRtpSender.getCapabilities(kind).codecs
    if kind == "video":
        h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
        h264.sort(key=lambda c: c.parameters.get("profile-level-id") != "42e01f")
        return h264 + [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    return [c for c in codecs if c.mimeType.lower() == "audio/opus"]


class Viewer:
    """One viewer's peer connection: a sending-only H.264 + Opus pair of packet tracks."""

    def __init__(self, broadcast: Broadcast, reply_to: str | None):
        self.id = uuid.uuid4().hex
        self.broadcast = broadcast
        self.reply_to = reply_to
        self.video = PacketTrack("video", broadcast.encoder.keyframe)
        self.audio = PacketTrack("audio", broadcast.encoder.keyframe)
        self.pc = None
        self.sdp = ""  # the answer
        self.connected = asyncio.Event()
        self._watchdog: asyncio.Task | None = None
        self.closed = False

    async def answer(self, sdp: str) -> str:
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.exceptions import InvalidAccessError, OperationError

        from .ice import remote_sdp_filter, rtc_configuration

        _offer_codecs_check(sdp)
        self.pc = RTCPeerConnection(rtc_configuration())
        self.pc.on("connectionstatechange", self._state_changed)
        # Our transceivers before the offer is applied: it takes them (same kinds, no mid
        # yet), and the codecs negotiated are limited to what the shared encoders make.
        for track in (self.video, self.audio):
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codec_preferences(track.kind))
            # A viewer's PLI/FIR reaches the sender, whose own encoder is never used: ask the
            # shared encoder instead (aiortc 1.16's RTCRtpSender hook for it).
            transceiver.sender._send_keyframe = self.broadcast.encoder.keyframe
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=remote_sdp_filter(sdp), type="offer"))
        except (OperationError, InvalidAccessError, ValueError) as exc:
            raise ServiceError(
                f"The viewer's offer cannot receive this broadcast (H.264 packetization-mode 1 and Opus): {exc}"
            ) from None
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        self.sdp = self.pc.localDescription.sdp
        return self.sdp

    async def _state_changed(self) -> None:
        state = self.pc.connectionState if self.pc else "closed"
        if self.closed:
            return
        await self.broadcast.to_viewer(self, {"type": "state", "state": state})
        if state == "connected":
            self.connected.set()
            self.broadcast.encoder.keyframe()
        elif state in ("failed", "closed"):
            await self.broadcast.leave(self.id, f"connection {state}")

    async def _watch(self) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), settings.LIVE_CONNECT_TIMEOUT)
        except TimeoutError:
            await self.broadcast.to_viewer(
                self, {"type": "error", "detail": "The WebRTC connection was not established in time."}
            )
            await self.broadcast.leave(self.id, "connect timeout")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        self.video.stop()
        self.audio.stop()
        if self.pc is not None:
            await self.pc.close()


class Broadcast:
    """A host session's broadcast: its shared encoder, its viewers, its events to them.
    It is one of the session's listeners (`tick`, `event`); everything runs on the loop."""

    def __init__(self, runtime, session):
        self.id = uuid.uuid4().hex
        self.runtime = runtime
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.group = broadcast_group_name(self.id)
        self.encoder = SharedEncoder(self.loop, self._fan_out, name=self.id[:6])
        self.viewers: dict[str, Viewer] = {}
        self.ended = False
        self._tasks: set[asyncio.Task] = set()
        self.started_at = time.monotonic()

    # --- the host session's listener ---------------------------------------------------

    def tick(self, picture: np.ndarray, pcm: np.ndarray, tick: int) -> None:
        if self.viewers:  # nobody watching: nothing to encode
            self.encoder.feed(picture, pcm, tick)

    def event(self, event: dict) -> None:
        kind = event.get("type")
        if kind in VIEWER_EVENTS:
            self._spawn(self.to_viewers(event))
        elif kind == "state" and event.get("state") == "closed":
            self._spawn(self.end("The host's session ended."))

    # --- media -------------------------------------------------------------------------

    def _fan_out(self, video: list, audio: list) -> None:
        stats = self.encoder.stats
        stats["video_frames_out"] += len(video) * len(self.viewers)
        stats["audio_packets_out"] += len(audio) * len(self.viewers)
        # RTP packets: aiortc cuts a frame into payloads of at most ~1.2 kB, one per Opus packet.
        stats["rtp_packets_out"] += (sum(-(-p.size // 1200) for p, _k in video) + len(audio)) * len(self.viewers)
        for viewer in self.viewers.values():
            for packet, keyframe in video:
                viewer.video.push(packet, keyframe)
            for packet in audio:
                viewer.audio.push(packet)

    # --- viewers -------------------------------------------------------------------------

    async def join(self, sdp: str, reply_to: str | None) -> Viewer:
        if self.ended:
            raise ServiceError("This broadcast has ended.")
        limit = settings.LIVE_BROADCAST_MAX_VIEWERS
        if len(self.viewers) >= limit:
            raise TooManyRequests(
                f"This broadcast is full: {len(self.viewers)} viewers, its limit (LIVE_BROADCAST_MAX_VIEWERS = "
                f"{limit}); try again when one has left.",
                retry_after=30,
                extra={"limit": "max_viewers"},
            )
        viewer = Viewer(self, reply_to)
        self.viewers[viewer.id] = viewer  # counted before any await: concurrent joins respect the limit
        try:
            await viewer.answer(sdp)
        except BaseException:
            self.viewers.pop(viewer.id, None)
            await viewer.close()
            raise
        if self.ended:
            await viewer.close()
            raise ServiceError("This broadcast has ended.")
        self.encoder.keyframe()
        self._spawn(self._count_changed())
        return viewer

    async def leave(self, viewer_id: str, reason: str = "bye") -> bool:
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        await viewer.close()
        logger.info("Broadcast %s: viewer %s left (%s)", self.id[:6], viewer_id[:6], reason)
        if not self.ended:
            await self._count_changed()
        return True

    async def _count_changed(self) -> None:
        event = {"type": "viewers", "count": len(self.viewers), "broadcast_id": self.id}
        await self.session.emit(event)
        await self.to_viewers(event)

    # --- events --------------------------------------------------------------------------

    async def to_viewers(self, event: dict) -> None:
        try:
            await self.runtime.layer.group_send(self.group, {"type": "live.event", "event": event})
        except Exception:  # Redis away: the viewers' sockets say so themselves
            logger.debug("Broadcast %s: could not send an event", self.id[:6], exc_info=True)

    async def to_viewer(self, viewer: Viewer, event: dict) -> None:
        if viewer.reply_to:
            await self.runtime.send(viewer.reply_to, {"type": "live.event", "session_id": viewer.id, "event": event})

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        with contextlib.suppress(ValueError):
            self.session.listeners.remove(self)
        self.encoder.close()
        self.runtime.broadcasts.pop(self.id, None)
        viewers, self.viewers = list(self.viewers.values()), {}
        with contextlib.suppress(Exception):  # the link stops working first (the record expires anyway)
            await self.loop.run_in_executor(None, broadcast_forget, self.id)
        await self.to_viewers({"type": "ended", "reason": reason, "broadcast_id": self.id})
        for viewer in viewers:
            await viewer.close()
        logger.info("Broadcast %s of session %s ended (%s)", self.id[:6], self.session.id[:6], reason)

    @property
    def stats(self) -> dict:
        return {"viewers": len(self.viewers), **self.encoder.stats}


# --- runtime handlers (runtime.py dispatches live.broadcast*) ------------------------------


def _broadcast_of(runtime, message: dict) -> Broadcast:
    broadcast = runtime.broadcasts.get(message.get("broadcast_id") or "")
    if broadcast is None:
        raise ServiceError("This broadcast has ended (its host's session closed).")
    return broadcast


async def broadcast_open(runtime, message: dict) -> dict:
    """live.broadcast {session_id}: the host session's broadcast, made on first use."""
    session = runtime.sessions.get(message.get("session_id") or "")
    if session is None or session.closed:
        raise ServiceError("No such live session on this worker (it was closed); open a new one.")
    broadcast = next((b for b in runtime.broadcasts.values() if b.session is session), None)
    if broadcast is None:
        broadcast = Broadcast(runtime, session)
        runtime.broadcasts[broadcast.id] = broadcast
        session.listeners.append(broadcast)
        logger.info("Broadcast %s of session %s opened", broadcast.id[:6], session.id[:6])
    return {
        "type": "broadcast",
        "broadcast_id": broadcast.id,
        "session_id": session.id,
        "viewers": len(broadcast.viewers),
        "max_viewers": settings.LIVE_BROADCAST_MAX_VIEWERS,
    }


async def broadcast_join(runtime, message: dict) -> dict:
    """live.broadcast_join {broadcast_id, sdp, events_to}: a viewer's answer."""
    if getattr(runtime, "draining", False):
        raise ServiceError("The worker serving this broadcast is shutting down; the broadcast ends soon.")
    broadcast = _broadcast_of(runtime, message)
    viewer = await broadcast.join(message["sdp"], message.get("events_to"))
    return {
        "type": "answer",
        "sdp": viewer.sdp,
        "sdp_type": "answer",
        "viewer_id": viewer.id,
        "broadcast_id": broadcast.id,
        "viewers": len(broadcast.viewers),
    }


async def broadcast_leave(runtime, message: dict) -> dict:
    """live.broadcast_leave {broadcast_id, viewer_id}: a viewer said bye or its socket closed."""
    broadcast = runtime.broadcasts.get(message.get("broadcast_id") or "")
    if broadcast is not None:
        await broadcast.leave(message.get("viewer_id") or "", "bye")
    return {"type": "ok"}
