"""The ASR engines on real speech (piper), fed in the 20 ms pieces of a WebRTC track."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from contracts.conversation import ASR_SAMPLE_RATE
from contracts.engines import asr_engine_names as catalogue_names
from contracts.errors import EngineUnavailable, InvalidInput, ServiceUnavailable
from lipsync_worker.conversation.asr import asr_engine_get, asr_engine_list, asr_engine_names
from lipsync_worker.conversation.vad import SpeechDetector

from .asr_standin import TranscriptionStandInServer
from .speech import pieces, piper_speech, silence

QUESTION = "What is the capital of France?"
SECOND_QUESTION = "What is two plus two?"


def padded(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def transcribe(engine_name: str, audio: np.ndarray, language: str = "en") -> tuple[str, list[str], float]:
    """(final transcript, partials in order, seconds finish() took)."""
    transcriber = asr_engine_get(engine_name).transcriber(language)
    partials = [p for piece in pieces(audio) if (p := transcriber.accept(piece)) is not None]
    start = time.perf_counter()
    final = transcriber.finish()
    return final, partials, time.perf_counter() - start


# --- the registry ----------------------------------------------------------------------


def test_every_catalogue_name_has_one_engine():
    assert asr_engine_names() == catalogue_names()
    assert [row["id"] for row in asr_engine_list()] == catalogue_names()


def test_catalogue_rows_say_whether_and_why(settings, tmp_path):
    settings.ASR_URL = ""
    settings.ASR_MODELS_DIR = tmp_path / "none"
    rows = {row["id"]: row for row in asr_engine_list()}

    assert set(rows["pocketsphinx"]) == {"id", "display_name", "licence", "offline", "available", "reason", "model"}
    assert rows["pocketsphinx"]["available"] and rows["pocketsphinx"]["offline"]
    assert not rows["openai"]["available"] and not rows["openai"]["offline"]
    assert "ASR_URL" in rows["openai"]["reason"]
    assert not rows["faster-whisper"]["available"]
    assert "ASR_MODELS_DIR" in rows["faster-whisper"]["reason"]


def test_an_unknown_engine_is_a_clear_error():
    with pytest.raises(InvalidInput) as caught:
        asr_engine_get("whisper.cpp")
    assert "Unknown ASR model 'whisper.cpp'" in caught.value.detail
    assert caught.value.extra["valid_asr_models"] == catalogue_names()


def test_an_unavailable_engine_says_what_to_set(settings):
    settings.ASR_URL = ""
    with pytest.raises(EngineUnavailable) as caught:
        asr_engine_get("openai").transcriber()
    assert "ASR_URL is not set" in caught.value.detail


# --- pocketsphinx ----------------------------------------------------------------------


def test_pocketsphinx_transcribes_a_question_with_partials_on_the_way():
    question = piper_speech(QUESTION)

    final, partials, finish_s = transcribe("pocketsphinx", padded(silence(0.3), question, silence(0.4)))

    assert final == "what is the capital of france"
    # Partials arrive while the student speaks (every ~250 ms), each one new.
    assert len(partials) >= 3
    assert all(a != b for a, b in zip(partials, partials[1:], strict=False))
    assert any(p.startswith("what is the") for p in partials)
    assert finish_s < 1.0  # the decoding happened during accept(); bench_asr.py holds it to 150 ms


def test_pocketsphinx_hears_nothing_in_silence():
    final, partials, _ = transcribe("pocketsphinx", silence(1.0))
    assert final == ""
    assert partials == []


def test_pocketsphinx_only_knows_english():
    with pytest.raises(EngineUnavailable) as caught:
        asr_engine_get("pocketsphinx").transcriber("fr")
    assert "only US English model ships" in caught.value.detail


def test_pocketsphinx_transcribes_concurrent_utterances_independently():
    texts = {QUESTION: "what is the capital of france", SECOND_QUESTION: "what is two plus two"}
    audios = {q: padded(silence(0.2), piper_speech(q), silence(0.3)) for q in texts}
    heard: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def session(question: str) -> None:
        try:
            heard.append((question, transcribe("pocketsphinx", audios[question])[0]))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    # Three sessions per question at once: more than the pool keeps idle.
    threads = [threading.Thread(target=session, args=(q,)) for q in texts for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert sorted(heard) == sorted((q, text) for q, text in texts.items() for _ in range(3))


def test_vad_and_pocketsphinx_hear_two_questions_as_a_live_session_would():
    """The session's loop (`lipsync_worker.live.listener`): VAD on every piece; a transcriber
    from the VAD's start (given the pre-roll: the audio from a little before the speech
    began) to its end."""
    from lipsync_worker.live.listener import PREROLL_SECONDS

    audio = padded(silence(0.5), piper_speech(QUESTION), silence(1.0), piper_speech(SECOND_QUESTION), silence(1.0))
    engine, detector = asr_engine_get("pocketsphinx"), SpeechDetector()
    heard, transcriber, fed = [], None, 0
    for piece in pieces(audio):
        fed += len(piece)
        if transcriber is not None:
            transcriber.accept(piece)
        for event in detector.feed(piece):
            if event.kind == "start":
                transcriber = engine.transcriber("en")
                transcriber.accept(audio[max(0, int((event.at - PREROLL_SECONDS) * ASR_SAMPLE_RATE)) : fed])
            else:
                heard.append(transcriber.finish())
                transcriber = None

    assert heard == ["what is the capital of france", "what is two plus two"]


# --- faster-whisper ----------------------------------------------------------------------


def _tiny_whisper(dest):
    """A randomly initialised, English-only Whisper (a few MB) converted to CTranslate2 as an
    operator would convert a real one, with a byte-level tokenizer.json of its vocabulary:
    it transcribes gibberish, but through every step of the real engine."""
    pytest.importorskip("faster_whisper", reason="faster-whisper is not installed")
    pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed")
    torch = pytest.importorskip("torch", reason="torch (for building the test model) is not installed")
    from ctranslate2.converters import TransformersConverter
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    byte_tokens = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokenizer = Tokenizer(models.BPE(vocab=byte_tokens, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ] + [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    tokenizer.add_special_tokens(specials)
    eot, sot = tokenizer.token_to_id("<|endoftext|>"), tokenizer.token_to_id("<|startoftranscript|>")
    vocab_size = tokenizer.get_vocab_size()
    config = WhisperConfig(
        vocab_size=vocab_size,
        d_model=64,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        num_mel_bins=80,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
    )
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(dest / "hf")
    model = dest / "models" / "tiny-random"
    TransformersConverter(str(dest / "hf")).convert(str(model), quantization="int8")
    tokenizer.save(str(model / "tokenizer.json"))
    # Without a transformers tokenizer the converter writes placeholder tokens: the real ones.
    (model / "vocabulary.json").write_text(json.dumps([tokenizer.id_to_token(i) for i in range(vocab_size)]))
    return model


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    return _tiny_whisper(tmp_path_factory.mktemp("whisper"))


def test_faster_whisper_runs_an_operator_model_end_to_end(settings, tiny_whisper):
    settings.ASR_MODELS_DIR = tiny_whisper.parent
    settings.ASR_WHISPER_MODEL = ""  # the first model found
    engine = asr_engine_get("faster-whisper")
    assert engine.availability() == (True, "")
    assert engine.describe()["model"] == "tiny-random"

    final, partials, _ = transcribe("faster-whisper", padded(silence(0.2), piper_speech(QUESTION), silence(0.3)))

    assert isinstance(final, str) and final == final.strip()  # gibberish from random weights
    assert partials == []  # no partials from this engine
    with pytest.raises(EngineUnavailable, match="cannot transcribe 'fr'"):
        engine.transcriber("fr")  # an English-only model


def test_faster_whisper_refuses_a_model_without_its_tokenizer(settings, tmp_path):
    model = tmp_path / "half-copied"
    model.mkdir()
    (model / "model.bin").write_bytes(b"\0")
    (model / "config.json").write_text("{}")
    settings.ASR_MODELS_DIR = tmp_path
    settings.ASR_WHISPER_MODEL = "half-copied"

    available, reason = asr_engine_get("faster-whisper").availability()

    # Without tokenizer.json faster-whisper would download one: refused instead.
    assert not available and "tokenizer.json" in reason and "'half-copied'" in reason
    assert str(model.parent) not in reason  # no server paths in what every admin reads


def test_faster_whisper_names_the_missing_model(settings, tmp_path):
    settings.ASR_MODELS_DIR = tmp_path
    settings.ASR_WHISPER_MODEL = "large-v3"

    with pytest.raises(EngineUnavailable) as caught:
        asr_engine_get("faster-whisper").transcriber()
    assert "large-v3" in caught.value.detail and "ASR_WHISPER_MODEL" in caught.value.detail


# --- an OpenAI-compatible server ---------------------------------------------------------


@pytest.fixture
def asr_server(settings):
    with TranscriptionStandInServer() as server:
        settings.ASR_URL = server.url
        settings.ASR_MODEL = "whisper-large-v3"
        settings.ASR_API_KEY = "sk-test"
        settings.ASR_TIMEOUT = 10.0  # the stand-in loads pocketsphinx per request, on a busy CI machine
        yield server


def test_openai_server_transcribes_the_utterance_sent_as_a_wav(asr_server):
    audio = padded(silence(0.3), piper_speech(QUESTION), silence(0.4))

    final, partials, _ = transcribe("openai", audio, language="en")

    assert final == "what is the capital of france"  # the stand-in runs pocketsphinx on the WAV
    assert partials == []
    [request] = asr_server.requests
    assert request["fields"] == {"model": "whisper-large-v3", "language": "en", "response_format": "json"}
    assert request["authorization"] == "Bearer sk-test"
    wav = request["wav"]
    assert (wav["channels"], wav["sample_width"], wav["sample_rate"]) == (1, 2, ASR_SAMPLE_RATE)
    assert len(wav["pcm"]) == len(audio)
    assert np.abs(wav["pcm"] / 32767.0 - np.clip(audio, -1, 1)).max() < 1e-4  # 16-bit quantisation


def test_openai_sends_no_key_when_none_is_set(asr_server, settings):
    settings.ASR_API_KEY = ""
    asr_server.reply = "  scripted answer \n"

    assert transcribe("openai", piper_speech(QUESTION))[0] == "scripted answer"
    assert asr_server.requests[0]["authorization"] is None


def test_openai_does_not_call_the_server_for_an_empty_utterance(asr_server):
    assert asr_engine_get("openai").transcriber().finish() == ""
    assert asr_server.requests == []


@pytest.mark.parametrize(
    "failure, message",
    [
        ({"status": 500}, "HTTP 500"),
        ({"status": 401}, "ASR_API_KEY"),
        ({"garbage": True}, "not the expected JSON"),
        ({"delay": 1.5}, "did not answer within 0.5 s"),
    ],
)
def test_openai_server_failures_are_service_unavailable(asr_server, settings, failure, message):
    settings.ASR_TIMEOUT = 0.5
    for key, value in failure.items():
        setattr(asr_server, key, value)
    transcriber = asr_engine_get("openai").transcriber()
    transcriber.accept(piper_speech(QUESTION))

    with pytest.raises(ServiceUnavailable) as caught:
        transcriber.finish()
    assert message in caught.value.detail
    assert "127.0.0.1" not in caught.value.detail  # the URL may name internal hosts


def test_openai_server_down_is_service_unavailable(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    settings.ASR_URL = f"http://127.0.0.1:{port}/v1"
    transcriber = asr_engine_get("openai").transcriber()
    transcriber.accept(silence(0.5) + 0.1)

    with pytest.raises(ServiceUnavailable) as caught:
        transcriber.finish()
    assert "cannot be reached" in caught.value.detail and str(port) not in caught.value.detail
