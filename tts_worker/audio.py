"""Audio helpers: WAV in and out, decoding any format with PyAV, cloning references."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np

from contracts.errors import InvalidMedia
from contracts.media_probe import DECLARED_SLACK_SECONDS, open_media

REFERENCE_SAMPLE_RATE = 16000  # what CosyVoice and GPT-SoVITS expect of a prompt
REFERENCE_MAX_SECONDS = 30.0
REFERENCE_MIN_SECONDS = 1.0
REFERENCE_LOUDNESS_LUFS = -23.0  # EBU R128 programme loudness
REFERENCE_PEAK = 10 ** (-1.0 / 20)  # keep true peaks under -1 dBFS


def wav_bytes(pcm: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV to (mono int16 samples, rate); other encodings go through PyAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() == 2:
                pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
                channels = wav.getnchannels()
                if channels > 1:
                    pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
                return pcm.astype(np.int16), wav.getframerate()
    except (wave.Error, EOFError):
        pass
    return decode_audio(io.BytesIO(data))


def decode_audio(source, sample_rate: int | None = None, *, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Any audio PyAV can read (a path or a file object) as mono int16 at `sample_rate`
    (or the stream's own rate). A path is opened with its extension's demuxer only. Past
    `max_seconds` of decoded sound it stops with InvalidMedia, whatever the header says."""
    try:
        if isinstance(source, str | Path):
            container = open_media(str(source), "audio")
        else:
            container = av.open(source)
        with container:
            if not container.streams.audio:
                raise InvalidMedia("The file has no audio stream.")
            stream = container.streams.audio[0]
            rate = sample_rate or stream.rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            limit = None if max_seconds is None else int((max_seconds + DECLARED_SLACK_SECONDS) * rate)
            parts, samples = [], 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    samples += len(parts[-1])
                if limit is not None and samples > limit:
                    raise InvalidMedia(f"The audio decodes to more than {max_seconds:g} s, the limit.")
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        # FFmpeg's message names the file's path on the worker: not for the caller.
        raise InvalidMedia("The audio could not be decoded: it is corrupt or not audio.") from exc
    pcm = np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)
    return pcm, int(rate)


def _trim_silence(audio: np.ndarray, rate: int, threshold_db: float = -40.0) -> np.ndarray:
    """Cut leading and trailing silence (20 ms frames quieter than the threshold below peak)."""
    frame = max(1, rate // 50)
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / (rms.max() + 1e-12)) > threshold_db)[0]
    if not len(loud):
        return audio
    start = max(0, (loud[0] - 1) * frame)
    end = min(len(audio), (loud[-1] + 2) * frame)
    return audio[start:end]


def voice_reference_prepare(src_path: str | Path, out_path: str | Path) -> dict:
    """Turn an uploaded voice sample into a cloning reference.

    Mono 16 kHz 16-bit WAV, silence trimmed at both ends, at most 30 s, loudness
    normalised to -23 LUFS (peaks kept under -1 dBFS). Returns facts about the result.
    Raises InvalidMedia when the audio is unreadable, silent or shorter than 1 s.
    """
    import pyloudnorm
    from django.conf import settings

    pcm, rate = decode_audio(str(src_path), REFERENCE_SAMPLE_RATE, max_seconds=settings.VOICE_MAX_SECONDS)
    audio = pcm.astype(np.float64) / 32768.0
    audio = _trim_silence(audio, rate)[: int(REFERENCE_MAX_SECONDS * rate)]
    if len(audio) < REFERENCE_MIN_SECONDS * rate:
        raise InvalidMedia(f"The voice sample needs at least {REFERENCE_MIN_SECONDS:g} s of sound.")
    if np.max(np.abs(audio)) < 1e-4:
        raise InvalidMedia("The voice sample is silent.")
    loudness = pyloudnorm.Meter(rate).integrated_loudness(audio)
    if np.isfinite(loudness):
        audio = audio * 10 ** ((REFERENCE_LOUDNESS_LUFS - loudness) / 20)
    peak = np.max(np.abs(audio))
    if peak > REFERENCE_PEAK:
        audio = audio * (REFERENCE_PEAK / peak)
    out = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    Path(out_path).write_bytes(wav_bytes(out, rate))
    return {"sample_rate": rate, "duration_seconds": len(out) / rate}
