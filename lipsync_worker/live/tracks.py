"""The media a session sends: one video and one audio track fed by the session's clock.

aiortc's senders pull frames with `recv()`; the clock pushes each 40 ms tick (one picture,
its 640 samples; `Peer.show`) into both tracks at the same moment, with timestamps from
the same tick counter, so picture and sound stay on one clock. Everything here runs on the
runtime's event loop (`asyncio.Queue` is not thread-safe).

A track hands aiortc what was pushed: an `av.Frame` (the sender encodes it) or an
`av.Packet` (already encoded: the sender only packetizes it). The video track takes the
tick's picture, I420 at the sent size (frames.sent_picture), with its tick (`push_picture`):
the sender gets it wrapped in a frame, not copied. The audio track takes the tick's samples
(`push_sound`): when the sender takes them, they become two 20 ms frames, or, when the
viewer takes Opus, their two Opus packets (codecs.voice_opus_context), encoded in one call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..engines.base import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from .codecs import voice_packets

VIDEO_TIME_BASE = Fraction(1, 90000)
VIDEO_PTS_PER_TICK = 90000 // FPS
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
# A sender that stops pulling (before the connection is up, or when it lags) must not
# make us buffer: beyond this many ticks (video) the oldest go; the sound keeps fewer (a
# viewer's sound is late by what waits here).
MAX_BUFFERED = 6
MAX_BUFFERED_SOUND = 3
# A session's audio packets: 20 ms (codecs.voice_opus_context).
SESSION_AUDIO_PACKET = SAMPLE_RATE // 50


class TickTrack(MediaStreamTrack):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue = asyncio.Queue()
        self._max_buffered = MAX_BUFFERED_SOUND if kind == "audio" else MAX_BUFFERED
        # Audio: a libopus context (codecs.voice_opus_context) when the viewer takes Opus; the
        # ticks' sound then goes to the sender already encoded.
        self.voice = None
        self._made: deque = deque()  # the rest of a tick's sound, made with its first packet

    def push(self, item) -> None:
        """An `av.Frame` or `av.Packet` to send (or a `_Picture`, a `_Sound`: made one when taken)."""
        while self._queue.qsize() >= self._max_buffered:
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    def push_picture(self, picture: np.ndarray, tick: int) -> None:
        """Video: the tick's picture (frames.sent_picture), made a frame when the sender takes it."""
        self.push(_Picture(picture, tick))

    def push_sound(self, pcm: np.ndarray, tick: int) -> None:
        """Audio: the tick's 640 samples, made 20 ms frames (or Opus packets, with `voice`)
        when the sender takes them."""
        self.push(_Sound(pcm, tick * SAMPLES_PER_FRAME))

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        while not self._made:
            item = await self._queue.get()
            if item is None:
                raise MediaStreamError
            if isinstance(item, _Picture):
                return video_frame(item.picture, item.tick)
            if not isinstance(item, _Sound):
                return item
            # Made here, when the sender takes it (sound dropped unsent is never encoded), on the
            # loop, both packets in one call (0.15 ms): a hop to a thread would cost more.
            if self.voice is not None:
                self._made.extend(voice_packets(self.voice, audio_frame(item.pcm, item.pts)))
            else:
                self._made.extend(
                    audio_frame(item.pcm[start : start + SESSION_AUDIO_PACKET], item.pts + start)
                    for start in range(0, len(item.pcm), SESSION_AUDIO_PACKET)
                )
        return self._made.popleft()

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()


class _Picture:
    __slots__ = ("picture", "tick")

    def __init__(self, picture: np.ndarray, tick: int):
        self.picture = picture
        self.tick = tick


class _Sound:
    __slots__ = ("pcm", "pts")

    def __init__(self, pcm: np.ndarray, pts: int):
        self.pcm = pcm
        self.pts = pts  # in samples


def video_frame(picture: np.ndarray, tick: int) -> av.VideoFrame:
    """The tick's picture (frames.sent_picture) as a frame for the encoder: its own pixels,
    not a copy (the pictures are never changed once made), when its height is a multiple of
    4; PyAV (18) reads other heights wrongly from a shared buffer (542 rows as 540, the
    colour planes shifted), so those are copied."""
    if picture.shape[0] % 6 == 0:  # I420 rows: height * 3/2, so height % 4 == 0
        frame = av.VideoFrame.from_numpy_buffer(picture, format="yuv420p")
    else:
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
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
