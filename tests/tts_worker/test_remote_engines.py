"""HTTP engines against local stand-ins of their servers; edge-tts without the internet."""

import wave

import numpy as np
import pytest

from tts_worker.engines import VoiceReference, get_engine, remote
from tts_worker.engines import edge as edge_module
from tutor_site.exceptions import EngineUnavailable, InvalidInput


def _closed_port_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(
    ("name", "setting"), [("cosyvoice", "COSYVOICE_URL"), ("sovits", "SOVITS_URL"), ("tacotron", "TACOTRON_URL")]
)
def test_unconfigured_servers_are_unavailable_saying_which_setting(settings, name, setting):
    setattr(settings, setting, "")
    available, reason = get_engine(name).availability()
    assert not available
    assert setting in reason
    with pytest.raises(EngineUnavailable, match=setting):
        list(get_engine(name).synthesize("Hello."))


def test_unreachable_server_is_unavailable_with_the_reason(settings):
    settings.COSYVOICE_URL = _closed_port_url()
    available, reason = get_engine("cosyvoice").availability()
    assert not available
    # The reason names the setting; the address stays out of what tenants see.
    assert "cannot be reached" in reason and "COSYVOICE_URL" in reason and settings.COSYVOICE_URL not in reason


def test_cosyvoice_sft_speaks_with_a_built_in_speaker(cosyvoice_server):
    engine = get_engine("cosyvoice")
    assert engine.availability() == (True, "")
    chunks = list(engine.synthesize("你好，世界。Nice to meet you.", voice="英文女"))
    assert [c.text for c in chunks] == ["你好，世界。", "Nice to meet you."]
    assert [r["path"] for r in cosyvoice_server.requests] == ["/inference_sft", "/inference_sft"]
    assert cosyvoice_server.requests[1]["fields"] == {"tts_text": "Nice to meet you.", "spk_id": "英文女"}
    assert chunks[1].sample_rate == 22050
    assert len(chunks[1].pcm) == pytest.approx((0.3 + 0.06 * 17) * 22050, abs=2)
    assert chunks[1].timings == []


def test_cosyvoice_zero_shot_sends_the_reference_and_its_text(cosyvoice_server, reference):
    chunks = list(get_engine("cosyvoice").synthesize("Clone me.", reference=reference))
    (req,) = cosyvoice_server.requests
    assert req["path"] == "/inference_zero_shot"
    assert req["fields"] == {"tts_text": "Clone me.", "prompt_text": reference.text}
    assert req["files"]["prompt_wav"] == open(reference.path, "rb").read()
    assert len(chunks) == 1


def test_cosyvoice_reference_without_text_goes_cross_lingual(cosyvoice_server, reference):
    list(get_engine("cosyvoice").synthesize("Clone me.", reference=VoiceReference(reference.path)))
    assert cosyvoice_server.requests[0]["path"] == "/inference_cross_lingual"


def test_failing_server_gives_a_clear_error(cosyvoice_server):
    cosyvoice_server.fail = True
    with pytest.raises(EngineUnavailable) as err:
        list(get_engine("cosyvoice").synthesize("Hello."))
    assert "CosyVoice server" in err.value.detail
    assert "answered 500" in err.value.detail and "CUDA out of memory" in err.value.detail
    assert err.value.status_code == 503


def test_server_that_dies_after_the_check_gives_a_clear_error(cosyvoice_server):
    engine = get_engine("cosyvoice")
    assert engine.availability()[0]
    cosyvoice_server.__exit__()
    with pytest.raises(EngineUnavailable, match="did not answer"):
        list(engine.synthesize("Hello."))


def test_sovits_default_voice_uses_the_configured_reference(sovits_server, settings):
    engine = get_engine("sovits")
    assert [v.id for v in engine.voices()] == ["default"]
    (chunk,) = engine.synthesize("Hello there.")
    (req,) = sovits_server.requests
    assert req["ref_audio_path"] == settings.SOVITS_REF_AUDIO
    assert req["prompt_text"] == "This is the default reference." and req["prompt_lang"] == "en"
    assert req["text"] == "Hello there." and req["media_type"] == "wav"
    assert chunk.sample_rate == 32000 and np.abs(chunk.pcm).max() > 5000


def test_sovits_clones_from_the_reference_path(sovits_server, reference):
    list(get_engine("sovits").synthesize("Clone me.", reference=reference))
    assert sovits_server.requests[0]["ref_audio_path"] == reference.path
    assert sovits_server.requests[0]["prompt_text"] == reference.text


def test_sovits_error_message_is_passed_on(sovits_server, settings):
    settings.SOVITS_PROMPT_LANG = ""
    with pytest.raises(EngineUnavailable, match="answered 400: prompt_lang is required"):
        list(get_engine("sovits").synthesize("Hello."))


def test_sovits_without_any_reference_is_a_clear_400(sovits_server, settings):
    settings.SOVITS_REF_AUDIO = ""
    with pytest.raises(InvalidInput, match="needs a reference voice"):
        list(get_engine("sovits").synthesize("Hello."))


def test_tacotron_through_its_server(tacotron_server):
    (chunk,) = get_engine("tacotron").synthesize("Hello from Tacotron.")
    assert tacotron_server.requests == [{"text": "Hello from Tacotron."}]  # empty params are dropped by parse_qs
    assert chunk.sample_rate == 22050 and len(chunk.pcm) > 0


def test_engines_that_cannot_clone_refuse_a_reference(reference):
    with pytest.raises(InvalidInput, match="cannot clone"):
        list(get_engine("piper").synthesize("Hello.", reference=reference))


@pytest.fixture
def edge_offline(monkeypatch):
    calls = []

    def probe(host, port, timeout=remote.PROBE_TIMEOUT):
        calls.append((host, port))
        return "[Errno -2] Name or service not known"

    remote.forget("up:edge-tts")
    monkeypatch.setattr(edge_module, "tcp_probe", probe)
    yield calls
    remote.forget("up:edge-tts")


def test_edge_tts_is_unavailable_offline_with_the_reason_and_checks_once(edge_offline):
    engine = get_engine("edge-tts")
    available, reason = engine.availability()
    assert not available
    assert "speech.platform.bing.com" in reason and "cannot be reached" in reason
    engine.availability()
    engine.describe()
    assert edge_offline == [("speech.platform.bing.com", 443)]  # cached
    assert "en-US-AriaNeural" in [v.id for v in engine.voices()]
    with pytest.raises(EngineUnavailable, match="cannot be reached"):
        list(engine.synthesize("Hello."))


def test_edge_tts_failed_call_is_a_clear_error(monkeypatch):
    # Pretend the probe passed, then let the real client meet a closed port.
    import edge_tts.communicate

    monkeypatch.setattr(edge_module.EdgeTTSEngine, "availability", lambda self: (True, ""))
    closed = _closed_port_url().replace("http://", "wss://")
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"{closed}/edge/v1?TrustedClientToken=x")
    with pytest.raises(EngineUnavailable, match="edge-tts synthesis failed: .+"):
        list(get_engine("edge-tts").synthesize("Hello."))


def test_edge_tts_decodes_mp3_and_word_boundaries(monkeypatch, speech_wav, tmp_path):
    # The service's answer (MP3 + word boundaries) replayed, to test our side of it.
    import av

    mp3_path = tmp_path / "speech.mp3"
    with wave.open(str(speech_wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        rate = w.getframerate()
    with av.open(str(mp3_path), "w") as out:
        stream = out.add_stream("mp3", rate=24000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="s16p", layout="mono", rate=24000)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)

    async def replay(sentence, voice):
        from tts_worker.engines.base import Timing

        return mp3_path.read_bytes(), [Timing("The", 50.0, 200.0), Timing("quick", 200.0, 450.0)]

    monkeypatch.setattr(edge_module.EdgeTTSEngine, "availability", lambda self: (True, ""))
    monkeypatch.setattr(edge_module, "_stream", replay)
    (chunk,) = get_engine("edge-tts").synthesize("The quick fox.")
    assert chunk.sample_rate == 24000
    assert chunk.duration_ms == pytest.approx(1000 * len(pcm) / rate, abs=120)
    assert [t.label for t in chunk.timings] == ["_", "The", "quick", "_"]
    assert chunk.timings[-1].end_ms == chunk.duration_ms
