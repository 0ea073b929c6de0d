"""Media validation and decoding with PyAV.

`probe_video` / `probe_audio` run in the web process before anything is stored: they open
the upload by path (file protocol only), check it against allow-lists and limits, and
demux it whole so that corrupt or truncated files are caught up front.
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from tutor_site.exceptions import InvalidMedia

TARGET_FPS = 25

# Extension -> PyAV demuxer name that must match what the bytes really are.
VIDEO_CONTAINERS = {
    ".mp4": "mov,mp4,m4a,3gp,3g2,mj2",
    ".m4v": "mov,mp4,m4a,3gp,3g2,mj2",
    ".mov": "mov,mp4,m4a,3gp,3g2,mj2",
    ".webm": "matroska,webm",
    ".mkv": "matroska,webm",
    ".avi": "avi",
}
VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg"}
AUDIO_CONTAINERS = {
    ".wav": "wav",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".opus": "ogg",
    ".flac": "flac",
    ".m4a": "mov,mp4,m4a,3gp,3g2,mj2",
    ".webm": "matroska,webm",
}
AUDIO_CODECS = {"aac", "mp3", "mp3float", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "pcm_u8"}


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration: float
    video_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_codec: str = ""
    sample_rate: int = 0
    rotation: int = 0


def _open(path: str, label: str):
    try:
        # Local files only: a playlist or concat file must not make FFmpeg fetch anything.
        return av.open(path, mode="r", options={"protocol_whitelist": "file"})
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        raise InvalidMedia(f"The {label} file could not be read: it is corrupt or not a media file.") from None


def _check_size(path: str, max_mb: int, label: str) -> None:
    size = os.path.getsize(path)
    if size == 0:
        raise InvalidMedia(f"The {label} file is empty.")
    if size > max_mb * 1024 * 1024:
        raise InvalidMedia(f"The {label} file is {size / 1048576:.0f} MB; the limit is {max_mb} MB.")


def _extension(filename: str, allowed: dict, label: str) -> str:
    ext = os.path.splitext(filename or "")[1].lower()
    if ext not in allowed:
        raise InvalidMedia(
            f"The {label} must be one of {', '.join(sorted(allowed))} (got '{ext or 'no extension'}')."
        )
    return ext


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _demux_all(container, stream, label: str) -> tuple[int, float]:
    """Read every packet of `stream`; returns (packets, last end time). Catches truncation."""
    packets = 0
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if packet.pts is not None and packet.time_base:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.FFmpegError:
        raise InvalidMedia(f"The {label} file is damaged: it cannot be read to the end.") from None
    return packets, end


def _decode_first(path: str, stream_kind: str, label: str) -> None:
    with _open(path, label) as container:
        streams = container.streams.video if stream_kind == "video" else container.streams.audio
        try:
            for _frame in container.decode(streams[0]):
                return
        except av.FFmpegError:
            pass
    raise InvalidMedia(f"The {label} file's {stream_kind} cannot be decoded: it is corrupt.")


def _check_container(container, expected: str, ext: str) -> None:
    if container.format.name != expected:
        raise InvalidMedia(
            f"The file is named '{ext}' but its content is '{container.format.name}': upload it with its real extension."
        )


def probe_video(path: str, filename: str, *, limits) -> MediaInfo:
    """Validate an uploaded avatar video. `limits` carries the AVATAR_* settings."""
    label = "video"
    ext = _extension(filename, VIDEO_CONTAINERS, label)
    _check_size(path, limits.AVATAR_MAX_UPLOAD_MB, label)
    with _open(path, label) as container:
        _check_container(container, VIDEO_CONTAINERS[ext], ext)
        streams = list(container.streams)
        if len(streams) > limits.AVATAR_MAX_STREAMS:
            raise InvalidMedia(f"The video has {len(streams)} streams; at most {limits.AVATAR_MAX_STREAMS} are allowed.")
        videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not videos:
            raise InvalidMedia("The file has no video stream.")
        if len(videos) > 1:
            raise InvalidMedia("The file has more than one video stream; upload a single-camera video.")
        stream = videos[0]
        codec = stream.codec_context.name
        if codec not in VIDEO_CODECS:
            raise InvalidMedia(f"Video codec '{codec}' is not supported; use one of {', '.join(sorted(VIDEO_CODECS))}.")
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise InvalidMedia("The video has no picture size: it is corrupt.")
        if max(width, height) > max(limits.AVATAR_MAX_WIDTH, limits.AVATAR_MAX_HEIGHT) or min(
            width, height
        ) > min(limits.AVATAR_MAX_WIDTH, limits.AVATAR_MAX_HEIGHT):
            raise InvalidMedia(
                f"The video is {width}x{height}; the largest accepted is "
                f"{limits.AVATAR_MAX_WIDTH}x{limits.AVATAR_MAX_HEIGHT}."
            )
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        fps = float(rate)
        if fps > limits.AVATAR_MAX_FPS + 0.01:
            raise InvalidMedia(f"The video runs at {fps:.2f} fps; at most {limits.AVATAR_MAX_FPS:g} fps is accepted.")
        audio = container.streams.audio[0] if container.streams.audio else None
        if audio is not None and audio.codec_context.name not in AUDIO_CODECS:
            raise InvalidMedia(f"Audio codec '{audio.codec_context.name}' in the video is not supported.")
        declared = _duration(container, stream)
        frames_declared = stream.frames
        packets, end = _demux_all(container, stream, label)
    if packets == 0:
        raise InvalidMedia("The video stream holds no frames.")
    if frames_declared and packets < 0.9 * frames_declared:
        raise InvalidMedia(
            f"The video is truncated: it declares {frames_declared} frames but only {packets} can be read."
        )
    duration = declared if declared else end
    if not fps and duration:
        fps = packets / duration
    if duration is None or duration < limits.AVATAR_MIN_SECONDS:
        raise InvalidMedia(f"The video is {duration or 0:.2f} s long; it must last at least {limits.AVATAR_MIN_SECONDS:g} s.")
    if duration > limits.AVATAR_MAX_SECONDS:
        raise InvalidMedia(f"The video is {duration:.1f} s long; the limit is {limits.AVATAR_MAX_SECONDS:g} s.")
    _decode_first(path, "video", label)
    return MediaInfo(
        container=VIDEO_CONTAINERS[ext],
        duration=duration,
        video_codec=codec,
        width=width,
        height=height,
        fps=fps,
        audio_codec=audio.codec_context.name if audio is not None else "",
    )


def probe_audio(path: str, filename: str, *, limits) -> MediaInfo:
    """Validate an uploaded reference voice (VOICE_* settings in `limits`)."""
    label = "voice"
    ext = _extension(filename, AUDIO_CONTAINERS, label)
    _check_size(path, limits.VOICE_MAX_UPLOAD_MB, label)
    with _open(path, label) as container:
        _check_container(container, AUDIO_CONTAINERS[ext], ext)
        if not container.streams.audio:
            raise InvalidMedia("The voice file has no audio stream.")
        if len(container.streams.audio) > 1:
            raise InvalidMedia("The voice file has more than one audio stream.")
        pictures = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        if pictures:
            raise InvalidMedia("The voice file contains video; upload audio only.")
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        if codec not in AUDIO_CODECS:
            raise InvalidMedia(f"Audio codec '{codec}' is not supported; use WAV, MP3, AAC, Opus, Vorbis or FLAC.")
        declared = _duration(container, stream)
        sample_rate = stream.codec_context.sample_rate
        packets, end = _demux_all(container, stream, label)
    if packets == 0:
        raise InvalidMedia("The voice file holds no audio.")
    duration = declared if declared else end
    if duration is None or duration < 1.0:
        raise InvalidMedia(f"The voice recording is {duration or 0:.2f} s long; it must last at least 1 s.")
    if duration > limits.VOICE_MAX_SECONDS:
        raise InvalidMedia(f"The voice recording is {duration:.1f} s long; the limit is {limits.VOICE_MAX_SECONDS:g} s.")
    _decode_first(path, "audio", label)
    return MediaInfo(container=AUDIO_CONTAINERS[ext], duration=duration, audio_codec=codec, sample_rate=sample_rate)


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
    with _open(path, "video") as container:
        if container.format.name != VIDEO_CONTAINERS[".mp4"] or not container.streams.video:
            return False
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return (
            ctx.name == "h264" and ctx.pix_fmt == "yuv420p" and stream.average_rate == fps
            and ctx.width % 2 == 0 and ctx.height % 2 == 0
        )


def iter_frames_at_fps(path: str, fps: int = TARGET_FPS, stats: DecodeStats | None = None) -> Iterator[np.ndarray]:
    """Decode a video to BGR frames resampled to a constant `fps` (nearest earlier frame)."""
    stats = stats if stats is not None else DecodeStats()
    with _open(path, "video") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        step = 1.0 / fps
        next_index = 0
        previous = None
        previous_time = None
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else (previous_time or 0.0) + step
            stats.decoded += 1
            stats.rotated = stats.rotated or bool(frame.rotation)
            image = _rotate(frame.to_ndarray(format="bgr24"), frame.rotation or 0)
            if previous is None:
                previous, previous_time = image, t
                continue
            # The previous frame is shown on [previous_time, t): emit it for every target tick there.
            while next_index * step < t - 1e-6:
                stats.emitted += 1
                yield previous
                next_index += 1
            previous, previous_time = image, t
        if previous is not None:
            # The last frame lasts one source frame; container durations often add padding.
            rate = float(stream.average_rate or 0) or fps
            end = previous_time + 1.0 / rate
            while next_index * step < end - 1e-6:
                stats.emitted += 1
                yield previous
                next_index += 1


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

    def __init__(self, path: str, width: int, height: int, fps: int = TARGET_FPS, crf: int = 18, preset: str = "veryfast"):
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
