"""Upload validation with PyAV: the allow-lists, limits and probes both sides apply.

`probe_video` / `probe_audio` run in the web process before anything is stored: they open
the upload by path (file protocol only), check it against allow-lists and limits, and
demux it whole so that corrupt or truncated files are caught up front. Decoding lives in
the lipsync worker (`lipsync_worker.video_io`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

from .errors import InvalidMedia

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


def open_media(path: str, label: str):
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
    with open_media(path, label) as container:
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
    with open_media(path, label) as container:
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
    with open_media(path, label) as container:
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
