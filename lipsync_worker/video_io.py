"""Video decoding and encoding for the lipsync worker (PyAV).

Uploads were probed by `contracts.media_probe` before they were stored; decoding resamples
to TARGET_FPS and encodes H.264 for clips.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from contracts.errors import InvalidMedia
from contracts.media_probe import TARGET_FPS, open_media


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    # PyAV reports the display-matrix rotation counter-clockwise in degrees.
    turns = (round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


@dataclass
class DecodeStats:
    decoded: int = 0
    emitted: int = 0
    rotated: bool = False

    @property
    def one_to_one(self) -> bool:
        """Every decoded frame was emitted exactly once: the source already was constant-rate."""
        return self.decoded == self.emitted and not self.rotated


def is_normalised_candidate(path: str, fps: int = TARGET_FPS) -> bool:
    """An H.264/yuv420p MP4 at exactly `fps` with even sides may be used as the normalised
    video unchanged, if decoding then confirms one frame per tick (see DecodeStats)."""
    with open_media(path, "video") as container:
        if os.path.splitext(path)[1].lower() != ".mp4" or not container.streams.video:
            return False
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return (
            ctx.name == "h264"
            and ctx.pix_fmt == "yuv420p"
            and stream.average_rate == fps
            and ctx.width % 2 == 0
            and ctx.height % 2 == 0
        )


def _frame_limits(max_seconds: float | None) -> tuple[int, int]:
    """(frames decoded, frames emitted) a video of at most `max_seconds` can give."""
    from django.conf import settings

    seconds = settings.AVATAR_MAX_SECONDS if max_seconds is None else max_seconds
    return int(seconds * settings.AVATAR_MAX_FPS * 1.05) + 10, int((seconds + 1) * TARGET_FPS)


def iter_frames_at_fps(
    path: str, fps: int = TARGET_FPS, stats: DecodeStats | None = None, *, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Decode a video to BGR frames resampled to a constant `fps` (nearest earlier frame).

    Decoding stops with InvalidMedia past `max_seconds` (AVATAR_MAX_SECONDS by default) of
    frames decoded or emitted, whatever the file's header or timestamps claim."""
    stats = stats if stats is not None else DecodeStats()
    max_decoded, max_emitted = _frame_limits(max_seconds)

    def over_limit() -> InvalidMedia:
        return InvalidMedia(
            f"The video decodes to more frames than {max_emitted // TARGET_FPS - 1} s allows: the file is malformed."
        )

    step = 1.0 / fps
    next_index = 0

    def emit(image: np.ndarray, until: float) -> Iterator[np.ndarray]:
        """`image` for every target tick before `until` (seconds)."""
        nonlocal next_index
        while next_index * step < until - 1e-6:
            if stats.emitted >= max_emitted:
                raise over_limit()
            stats.emitted += 1
            yield image
            next_index += 1

    with open_media(path, "video") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        previous = None
        previous_time = None
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else (previous_time or 0.0) + step
            stats.decoded += 1
            if stats.decoded > max_decoded:
                raise over_limit()
            stats.rotated = stats.rotated or bool(frame.rotation)
            image = _rotate(frame.to_ndarray(format="bgr24"), frame.rotation or 0)
            if previous is None:
                previous, previous_time = image, t
                continue
            # The previous frame is shown on [previous_time, t): emit it for every target tick there.
            yield from emit(previous, t)
            previous, previous_time = image, t
        if previous is not None:
            # The last frame lasts one source frame; container durations often add padding.
            rate = float(stream.average_rate or 0) or fps
            yield from emit(previous, previous_time + 1.0 / rate)


def prefetched(iterator: Iterator, depth: int = 8) -> Iterator:
    """Run `iterator` (e.g. decoding) in a thread, `depth` items ahead of the consumer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                items.put(item)
            items.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def video_frame_from_bgr(image: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame for the encoder. OpenCV's BT.601 conversion is the exact inverse of
    FFmpeg's decoding to BGR, where FFmpeg's own BGR->YUV path darkens every re-encode by
    about 2/255; it is also several times faster. Sides must be even."""
    import cv2

    return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")


class BackgroundVideoWriter:
    """A VideoWriter fed through a small queue, so encoding overlaps the caller's work
    (PyAV encodes with the GIL released)."""

    def __init__(self, *args, **kwargs):
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._writer = VideoWriter(*args, **kwargs)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                break
            if self._error is None:
                try:
                    self._writer.write(image)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def write(self, image: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(image)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._writer.close()

    @property
    def frames(self) -> int:
        return self._writer.frames

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoWriter:
    """H.264 MP4 writer for BGR frames at a constant frame rate."""

    def __init__(
        self, path: str, width: int, height: int, fps: int = TARGET_FPS, crf: int = 18, preset: str = "veryfast"
    ):
        self._container = av.open(path, mode="w")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width = width - width % 2
        self._stream.height = height - height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        self._stream.codec_context.thread_type = "AUTO"
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        h, w = self._stream.height, self._stream.width
        frame = video_frame_from_bgr(np.ascontiguousarray(image[:h, :w]))
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
