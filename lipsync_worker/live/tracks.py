"""The media a session sends: one video and one audio track fed by the session's clock.

aiortc's senders pull frames with `recv()`; the clock pushes each 40 ms tick (one picture,
its 640 samples; `Peer.show`) into both tracks at the same moment, with timestamps from
the same tick counter, so picture and sound stay on one clock. Everything here runs on the
runtime's event loop (`asyncio.Queue` is not thread-safe).

A track hands aiortc what was pushed: an `av.Frame` (the sender encodes it) or an
`av.Packet` (already encoded: the sender only packetizes it). The video track takes a BGR
picture with its tick (`push_picture`): it becomes a YUV frame when the sender takes it.
The audio track takes the tick's samples (`push_sound`): two 20 ms frames, or, when the
viewer takes Opus, their Opus packets (codecs.voice_opus_context), made when the sender
takes them.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..engines.base import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from .codecs import bgr_to_i420, voice_packets

VIDEO_TIME_BASE = Fraction(1, 90000)
VIDEO_PTS_PER_TICK = 90000 // FPS
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
# A sender that stops pulling (before the connection is up, or when it lags) must not
# make us buffer: beyond this many frames the oldest go.
MAX_BUFFERED = 6
# A session's audio packets: 20 ms (codecs.voice_opus_context).
SESSION_AUDIO_PACKET = SAMPLE_RATE // 50


class TickTrack(MediaStreamTrack):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue = asyncio.Queue()
        # Audio: a libopus context (codecs.voice_opus_context) when the viewer takes Opus; the
        # ticks' sound then goes to the sender already encoded.
        self.voice = None

    def push(self, item) -> None:
        """An `av.Frame` or `av.Packet` to send (or a `_Picture`, a `_Sound`: made one when taken)."""
        while self._queue.qsize() >= MAX_BUFFERED:
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    def push_picture(self, image: np.ndarray, tick: int) -> None:
        """Video: the tick's BGR picture, made a frame only when the sender takes it."""
        self.push(_Picture(image, tick))

    def push_sound(self, pcm: np.ndarray, tick: int) -> None:
        """Audio: the tick's 640 samples as two 20 ms halves, each made a frame (or an Opus
        packet, with `voice`) only when the sender takes it."""
        for start in range(0, SAMPLES_PER_FRAME, SESSION_AUDIO_PACKET):
            self.push(_Sound(pcm[start : start + SESSION_AUDIO_PACKET], tick * SAMPLES_PER_FRAME + start))

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            raise MediaStreamError
        if isinstance(item, _Picture):
            # Here, when the sender takes it (a picture dropped unsent is never converted), on
            # the loop: 0.3 ms of OpenCV without the GIL costs less than a hop to a thread.
            return video_frame(item.image, item.tick)
        if isinstance(item, _Sound):
            frame = audio_frame(item.pcm, item.pts)
            # Encoded here, on the loop (0.35 ms), rather than by a hop to aiortc's executor.
            packets = voice_packets(self.voice, frame) if self.voice is not None else None
            return packets[0] if packets else frame
        return item

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()


class _Picture:
    __slots__ = ("image", "tick")

    def __init__(self, image: np.ndarray, tick: int):
        self.image = image
        self.tick = tick


class _Sound:
    __slots__ = ("pcm", "pts")

    def __init__(self, pcm: np.ndarray, pts: int):
        self.pcm = pcm
        self.pts = pts  # in samples


def video_frame(image: np.ndarray, tick: int) -> av.VideoFrame:
    """The tick's BGR picture as a frame for the encoder: YUV 4:2:0 (what both encoders
    take; converting here is 3x cheaper than their swscale), BGR when its size is odd."""
    height, width = image.shape[:2]
    if width % 2 or height % 2:
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    else:
        frame = av.VideoFrame.from_ndarray(bgr_to_i420(image), format="yuv420p")
    frame.pts = tick * VIDEO_PTS_PER_TICK
    frame.time_base = VIDEO_TIME_BASE
    return frame


def audio_frame(pcm: np.ndarray, pts: int) -> av.AudioFrame:
    """Samples (int16, 16 kHz) as one frame starting at sample `pts`."""
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = AUDIO_TIME_BASE
    return frame


SILENT_TICK = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
