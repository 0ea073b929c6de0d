"""Talking clips: an engine's frames and the speech, encoded into one MP4 (H.264 + AAC)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from .engines.base import FPS, SAMPLE_RATE, AudioSegment
from .video_io import video_frame_from_bgr

AUDIO_FRAME = 1024


@dataclass
class ClipResult:
    frame_count: int
    duration: float
    mouth_open: np.ndarray  # intended opening per frame


class ClipWriter:
    """MP4 writer: video frames are encoded on a background thread while the caller
    renders the next ones; the audio track is added at the end, on the same clock (t=0)."""

    def __init__(self, path: str, width: int, height: int, crf: int = 17, preset: str = "veryfast"):
        self.container = av.open(path, mode="w", options={"movflags": "faststart"})
        self.video = self.container.add_stream("libx264", rate=FPS)
        self.video.width, self.video.height = width - width % 2, height - height % 2
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": preset}
        self.video.codec_context.thread_type = "AUTO"
        self.audio = self.container.add_stream("aac", rate=SAMPLE_RATE)
        self.audio.layout = "mono"
        self.frames = 0
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode_video, name="clip-video", daemon=True)
        self._thread.start()

    def _encode_video(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                break
            if self._error is not None:
                continue
            try:
                frame = video_frame_from_bgr(np.ascontiguousarray(image[: self.video.height, : self.video.width]))
                frame.pts = self.frames
                for packet in self.video.encode(frame):
                    self.container.mux(packet)
                self.frames += 1
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def write_frame(self, image: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(image)

    def finish(self, samples: np.ndarray) -> None:
        """Flush the video, then write the whole audio track starting at t=0."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        for packet in self.video.encode():
            self.container.mux(packet)
        pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        for start in range(0, len(pcm), AUDIO_FRAME):
            chunk = pcm[start : start + AUDIO_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            for packet in self.audio.encode(frame):
                self.container.mux(packet)
        for packet in self.audio.encode():
            self.container.mux(packet)
        self.container.close()

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.container.close()


def render_clip(
    engine,
    handle,
    size: tuple[int, int],
    audio: AudioSegment,
    out_path: str,
    *,
    first_frame: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ClipResult:
    """Render `audio` with a prepared avatar into `out_path`."""
    total = audio.frame_count
    # Pad the speech to whole frames so that picture and sound end together.
    samples = np.pad(audio.samples, (0, total * (SAMPLE_RATE // FPS) - len(audio.samples)))
    writer = ClipWriter(out_path, *size)
    opening = []
    try:
        for k, rendered in enumerate(engine.render(handle, audio, first_frame)):
            writer.write_frame(rendered.image)
            opening.append(rendered.mouth_open)
            if progress is not None:
                progress(k + 1, total)
        writer.finish(samples)
    except BaseException:
        writer.abort()
        raise
    return ClipResult(frame_count=len(opening), duration=len(samples) / SAMPLE_RATE, mouth_open=np.array(opening))
