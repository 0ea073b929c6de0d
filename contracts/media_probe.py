"""Upload validation with PyAV: the allow-lists, limits and probes both sides apply.

`probe_video` / `probe_audio` run in the web process before anything is stored: they open
the upload by path (file protocol only) with the one demuxer its extension allows (FFmpeg
never guesses), check it against allow-lists and limits, and demux it whole so that
corrupt or truncated files are caught up front. Limits apply to what the file really holds
(packets read, samples decoded), never only to what its header declares: reading stops as
soon as a limit is passed. Decoding lives in the workers (`lipsync_worker.video_io`,
`tts_worker.audio`), which apply the same limits to what they decode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

from .errors import InvalidMedia

TARGET_FPS = 25

# Accepted extensions and FFmpeg's name of their container (as `MediaInfo.container`).
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
# Extension -> the only demuxer FFmpeg may use for it. Never FFmpeg's own guess: a file
# named .mp4 that holds ffconcat text must not reach the concat demuxer.
DEMUXERS = {
    ".mp4": "mov",
    ".m4v": "mov",
    ".mov": "mov",
    ".m4a": "mov",
    ".webm": "matroska",
    ".mkv": "matroska",
    ".avi": "avi",
    ".wav": "wav",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".opus": "ogg",
    ".flac": "flac",
}
# A header may understate the length a little (rounding, padding); more than this is a lie.
DECLARED_SLACK_SECONDS = 1.0
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


def open_media(path: str, label: str, ext: str | None = None):
    """Open with the demuxer of `ext` (default: the path's own extension), local files only."""
    ext = (ext or os.path.splitext(path)[1]).lower()
    demuxer = DEMUXERS.get(ext)
    if demuxer is None:
        raise InvalidMedia(f"The {label} file's type '{ext or 'no extension'}' is not accepted.")
    try:
        return av.open(path, mode="r", format=demuxer, options={"protocol_whitelist": "file"})
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        raise InvalidMedia(
            f"The {label} file could not be read as '{ext}': it is corrupt, or its content is another format "
            "(upload it with its real extension)."
        ) from None


def _check_size(path: str, max_mb: int, label: str) -> None:
    size = os.path.getsize(path)
    if size == 0:
        raise InvalidMedia(f"The {label} file is empty.")
    if size > max_mb * 1024 * 1024:
        raise InvalidMedia(f"The {label} file is {size / 1048576:.0f} MB; the limit is {max_mb} MB.")


def _extension(filename: str, allowed: dict, label: str) -> str:
    ext = os.path.splitext(filename or "")[1].lower()
    if ext not in allowed:
        raise InvalidMedia(f"The {label} must be one of {', '.join(sorted(allowed))} (got '{ext or 'no extension'}').")
    return ext


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _demux_all(container, stream, label: str, *, max_seconds: float, max_packets: int) -> tuple[int, float]:
    """Read every packet of `stream`; returns (packets, last end time). Catches truncation,
    and stops as soon as the file holds more than the limits, whatever its header says."""
    packets = 0
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if packet.pts is not None and packet.time_base:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if end > max_seconds + DECLARED_SLACK_SECONDS:
                raise InvalidMedia(f"The {label} lasts more than {max_seconds:g} s, the limit.")
            if packets > max_packets:
                raise InvalidMedia(
                    f"The {label} holds more than {max_packets} frames: more than {max_seconds:g} s allows."
                )
    except av.FFmpegError:
        raise InvalidMedia(f"The {label} file is damaged: it cannot be read to the end.") from None
    return packets, end


def _check_declared(label: str, declared: float | None, real: float) -> None:
    if declared and real > declared + max(DECLARED_SLACK_SECONDS, 0.1 * declared):
        raise InvalidMedia(
            f"The {label} really lasts {real:.1f} s but its header declares {declared:.1f} s: the file is malformed."
        )


def _decoded_seconds(container, stream, label: str, max_seconds: float) -> float:
    """Decode the audio and count its samples, stopping past the limit (audio is cheap to
    decode, and its packets can hide any number of samples)."""
    samples, rate = 0, stream.codec_context.sample_rate or 1
    try:
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate or rate
            if samples / rate > max_seconds + DECLARED_SLACK_SECONDS:
                raise InvalidMedia(f"The {label} decodes to more than {max_seconds:g} s, the limit.")
    except av.FFmpegError:
        raise InvalidMedia(f"The {label} file's audio cannot be decoded: it is corrupt.") from None
    return samples / rate


def _decode_first(path: str, ext: str, stream_kind: str, label: str) -> None:
    with open_media(path, label, ext) as container:
        streams = container.streams.video if stream_kind == "video" else container.streams.audio
        try:
            for _frame in container.decode(streams[0]):
                return
        except av.FFmpegError:
            pass
    raise InvalidMedia(f"The {label} file's {stream_kind} cannot be decoded: it is corrupt.")


def probe_video(path: str, filename: str, *, limits) -> MediaInfo:
    """Validate an uploaded avatar video. `limits` carries the AVATAR_* settings."""
    label = "video"
    ext = _extension(filename, VIDEO_CONTAINERS, label)
    _check_size(path, limits.AVATAR_MAX_UPLOAD_MB, label)
    with open_media(path, label, ext) as container:
        streams = list(container.streams)
        if len(streams) > limits.AVATAR_MAX_STREAMS:
            raise InvalidMedia(
                f"The video has {len(streams)} streams; at most {limits.AVATAR_MAX_STREAMS} are allowed."
            )
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
        if max(width, height) > max(limits.AVATAR_MAX_WIDTH, limits.AVATAR_MAX_HEIGHT) or min(width, height) > min(
            limits.AVATAR_MAX_WIDTH, limits.AVATAR_MAX_HEIGHT
        ):
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
        max_packets = int(limits.AVATAR_MAX_SECONDS * limits.AVATAR_MAX_FPS * 1.05) + 10
        packets, end = _demux_all(
            container, stream, label, max_seconds=limits.AVATAR_MAX_SECONDS, max_packets=max_packets
        )
    if packets == 0:
        raise InvalidMedia("The video stream holds no frames.")
    _check_declared(label, declared, end)
    if frames_declared and packets < 0.9 * frames_declared:
        raise InvalidMedia(
            f"The video is truncated: it declares {frames_declared} frames but only {packets} can be read."
        )
    duration = max(declared or 0.0, end)
    if not fps and duration:
        fps = packets / duration
    if duration is None or duration < limits.AVATAR_MIN_SECONDS:
        raise InvalidMedia(
            f"The video is {duration or 0:.2f} s long; it must last at least {limits.AVATAR_MIN_SECONDS:g} s."
        )
    if duration > limits.AVATAR_MAX_SECONDS:
        raise InvalidMedia(f"The video is {duration:.1f} s long; the limit is {limits.AVATAR_MAX_SECONDS:g} s.")
    _decode_first(path, ext, "video", label)
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
    with open_media(path, label, ext) as container:
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
        packets, end = _demux_all(
            container,
            stream,
            label,
            max_seconds=limits.VOICE_MAX_SECONDS,
            max_packets=int(limits.VOICE_MAX_SECONDS * 1000) + 100,
        )
    if packets == 0:
        raise InvalidMedia("The voice file holds no audio.")
    with open_media(path, label, ext) as container:
        decoded = _decoded_seconds(container, container.streams.audio[0], label, limits.VOICE_MAX_SECONDS)
    _check_declared(label, declared, max(end, decoded))
    duration = max(declared or 0.0, decoded)
    if duration is None or duration < 1.0:
        raise InvalidMedia(f"The voice recording is {duration or 0:.2f} s long; it must last at least 1 s.")
    if duration > limits.VOICE_MAX_SECONDS:
        raise InvalidMedia(
            f"The voice recording is {duration:.1f} s long; the limit is {limits.VOICE_MAX_SECONDS:g} s."
        )
    _decode_first(path, ext, "audio", label)
    return MediaInfo(container=AUDIO_CONTAINERS[ext], duration=duration, audio_codec=codec, sample_rate=sample_rate)
