"""Cloning references: mono, 16 kHz, trimmed, at most 30 s, loudness-normalised."""

import wave

import numpy as np
import pyloudnorm
import pytest

from tests import media
from tts_worker.audio import voice_reference_prepare
from tutor_site.exceptions import InvalidMedia


def _write(path, samples: np.ndarray, rate: int):
    """samples: float in [-1, 1], shape (n,) or (n, channels)."""
    data = np.clip(samples * 32767, -32768, 32767).astype("<i2")
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def _read(path):
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate(), w.getnchannels()


def test_long_quiet_stereo_upload_becomes_a_normalised_mono_16k_reference(tmp_path, speech_wav):
    speech, rate, _ = _read(speech_wav)
    speech = speech.astype(np.float64) / 32768 * 0.05  # a quiet recording
    # 2 s of silence, then 40 s of speech, in stereo at 44.1 kHz.
    loop = np.tile(speech, int(np.ceil(40 * rate / len(speech))))[: 40 * rate]
    mono = np.concatenate([np.zeros(2 * rate), loop])
    src = _write(tmp_path / "upload.wav", np.stack([mono, mono], axis=1), rate)
    out = tmp_path / "reference.wav"

    facts = voice_reference_prepare(src, out)

    pcm, out_rate, channels = _read(out)
    assert (out_rate, channels) == (16000, 1)
    assert facts == {"sample_rate": 16000, "duration_seconds": pytest.approx(len(pcm) / 16000)}
    assert 29 <= len(pcm) / 16000 <= 30
    # The leading silence is gone: speech starts within the first 100 ms.
    assert np.abs(pcm[:1600]).max() > 300
    loudness = pyloudnorm.Meter(16000).integrated_loudness(pcm / 32768)
    assert loudness == pytest.approx(-23, abs=1.0)
    assert np.abs(pcm).max() <= 32767 * 10 ** (-1 / 20) + 1


def test_mp3_upload_is_decoded(tmp_path, speech_wav):
    src = media.transcode_audio(speech_wav, tmp_path / "voice.mp3", codec="libmp3lame")
    voice_reference_prepare(src, tmp_path / "ref.wav")
    assert _read(tmp_path / "ref.wav")[1] == 16000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _write(p, np.zeros(16000 * 3), 16000), "silent|at least"),
        (lambda p: _write(p, 0.5 * np.sin(np.arange(4000) / 5), 16000), "at least 1 s"),
        (lambda p: p.write_bytes(b"this is not audio at all") and p, "could not be (decoded|read)|no audio"),
    ],
)
def test_unusable_uploads_are_refused_with_a_reason(tmp_path, make, message):
    src = tmp_path / "upload.wav"
    make(src)
    with pytest.raises(InvalidMedia, match=message):
        voice_reference_prepare(src, tmp_path / "out.wav")
