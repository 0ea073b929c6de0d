"""The media a session sends: one video and one audio track fed by the session's clock.

aiortc's senders pull frames with `recv()`; the clock pushes each 40 ms tick (one video
frame, two 20 ms audio frames; `Peer.show`) into both tracks at the same moment, with
timestamps from the same tick counter, so picture and sound stay on one clock. Everything
here runs on the runtime's event loop (`asyncio.Queue` is not thread-safe).
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..engines.base import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

VIDEO_TIME_BASE = Fraction(1, 90000)
VIDEO_PTS_PER_TICK = 90000 // FPS
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
AUDIO_FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms, Opus' usual packet
# A sender that stops pulling (before the connection is up, or when it lags) must not
# make us buffer: beyond this many frames the oldest go.
MAX_BUFFERED = 6


class TickTrack(MediaStreamTrack):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue = asyncio.Queue()

    def push(self, frame) -> None:
        while self._queue.qsize() >= MAX_BUFFERED:
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()


def video_frame(image: np.ndarray, tick: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts = tick * VIDEO_PTS_PER_TICK
    frame.time_base = VIDEO_TIME_BASE
    return frame


def audio_frames(pcm: np.ndarray, tick: int) -> list[av.AudioFrame]:
    """The tick's 640 samples (int16) as two 20 ms frames."""
    frames = []
    for half in range(SAMPLES_PER_FRAME // AUDIO_FRAME_SAMPLES):
        part = pcm[half * AUDIO_FRAME_SAMPLES : (half + 1) * AUDIO_FRAME_SAMPLES]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part.reshape(1, -1)), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = tick * SAMPLES_PER_FRAME + half * AUDIO_FRAME_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        frames.append(frame)
    return frames


SILENT_TICK = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
