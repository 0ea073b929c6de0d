"""Test media made by the tests themselves (never fixtures from elsewhere).

The face clip animates `skimage.data.astronaut()` (shipped inside scikit-image) with a
small head motion, so the face tracker has a real face to follow on every frame.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data


def _astronaut_bgr() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def face_frames(seconds: float = 2.0, fps: int = 25, size: tuple[int, int] = (320, 384)) -> list[np.ndarray]:
    """Frames of the astronaut's head moving gently (width, height = size)."""
    width, height = size
    base = _astronaut_bgr()[0:400, 80:400]  # head and shoulders
    frames = []
    for i in range(int(round(seconds * fps))):
        t = i / fps
        angle = 3.0 * math.sin(2 * math.pi * 0.5 * t)
        shift = (6.0 * math.sin(2 * math.pi * 0.3 * t), 4.0 * math.cos(2 * math.pi * 0.4 * t))
        h, w = base.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += shift
        moved = cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        frames.append(cv2.resize(moved, (width, height), interpolation=cv2.INTER_AREA))
    return frames


def noise_frames(seconds: float = 2.0, fps: int = 25, size=(320, 240), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    coffee = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), size)
    return [
        np.clip(coffee.astype(int) + rng.integers(-10, 10, coffee.shape), 0, 255).astype(np.uint8)
        for _ in range(int(seconds * fps))
    ]


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 25,
    codec: str = "libx264",
    container_format: str | None = None,
    audio_seconds: float | None = None,
    extra_audio_streams: int = 0,
) -> Path:
    """Encode BGR frames (and optionally a tone track) into a video file."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        audio_streams = []
        if audio_seconds is not None:
            for _ in range(1 + extra_audio_streams):
                a = out.add_stream("aac", rate=16000)
                a.layout = "mono"
                audio_streams.append(a)
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame[: stream.height, : stream.width]), format="bgr24"
            )
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        for a in audio_streams:
            _encode_tone(out, a, audio_seconds)
    return path


def _encode_tone(out, stream, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.2 * np.sin(2 * math.pi * 220 * t)).astype(np.float32)
    for start in range(0, len(tone), 1024):
        chunk = tone[start : start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def write_tone_wav(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    path = Path(path)
    with av.open(str(path), mode="w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        pcm = (8000 * np.sin(2 * math.pi * 180 * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def transcode_audio(src: Path, dst: Path, codec: str = "libmp3lame", container_format: str | None = None) -> Path:
    """Re-encode the audio of `src` into `dst` (e.g. a WAV into an MP3) with PyAV's bundled FFmpeg.

    The container comes from dst's suffix unless `container_format` names it."""
    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), mode="w", format=container_format) as out:
        audio = source.streams.audio[0]
        stream = out.add_stream(codec, rate=audio.rate)
        # A WAV may carry only a channel count ("1 channels"); encoders want a named layout.
        stream.layout = {1: "mono", 2: "stereo"}.get(audio.channels, audio.layout.name)
        for frame in source.decode(audio):
            frame.pts = None  # the encoder resamples and re-frames; let it number the frames
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst
