"""The streaming path: chunks through Redis as each sentence is done, and cancel."""

import threading
import time
import uuid

import pytest

from contracts import tts_stream as stream
from contracts.tts_stream import TTSStream
from tts_worker import services
from tutor_site.exceptions import EngineUnavailable, InvalidInput

SENTENCES = [
    "Good morning,",
    "and welcome to today's lesson about fractions.",
    "A fraction describes a part of a whole, like one half of a pizza.",
    "Let's start with a simple example that everybody knows.",
]


def publish_in_thread(request_id, text, engine="piper", voice=""):
    """What the tts worker's task does, run here in a thread (the worker test is below)."""
    box = {}

    def run():
        box["result"] = services.tts_stream_publish(request_id, text, engine, voice)
        box["done_at"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


@pytest.fixture(autouse=True)
def _piper_loaded():
    services.tts_engines_warm_up(["piper"])


@pytest.mark.parametrize("engine", ["piper", "espeak-ng"])
def test_first_chunk_arrives_before_the_rest_is_synthesised(engine):
    request_id = uuid.uuid4().hex
    client = TTSStream(request_id)
    start = time.perf_counter()
    thread, box = publish_in_thread(request_id, " ".join(SENTENCES), engine)
    chunks, arrivals = [], []
    for chunk in client.chunks(timeout=20):
        arrivals.append(time.perf_counter())
        chunks.append(chunk)
    thread.join(10)
    assert " ".join(c.text for c in chunks) == " ".join(SENTENCES)
    assert box["result"] == {"request_id": request_id, "chunks": 4, "cancelled": False}
    assert arrivals[0] < box["done_at"]
    assert arrivals[0] - start < 0.6 * (box["done_at"] - start)
    for chunk in chunks:  # what crossed Redis is what the engine made
        assert chunk.pcm.dtype.name == "int16" and len(chunk.pcm) > 10000
        assert chunk.timings[-1].end_ms == pytest.approx(chunk.duration_ms)


def test_cancel_stops_synthesis_at_once():
    request_id = uuid.uuid4().hex
    text = " ".join(f"This is sentence number {i} of a very long lecture." for i in range(40))
    client = TTSStream(request_id)
    thread, box = publish_in_thread(request_id, text)
    first = next(iter(client.chunks(timeout=20)))
    assert first.text.startswith("This is sentence number 0")
    cancelled_at = time.perf_counter()
    client.cancel()
    thread.join(10)
    assert not thread.is_alive()
    # At most the sentence in progress is finished (piper: well under 0.5 s).
    assert box["done_at"] - cancelled_at < 0.5
    assert box["result"]["cancelled"] is True
    assert box["result"]["chunks"] < 5
    assert list(client.chunks(timeout=1)) == []


def test_cancel_before_the_worker_starts_means_no_synthesis():
    request_id = uuid.uuid4().hex
    stream.cancel(request_id)
    result = services.tts_stream_publish(request_id, " ".join(SENTENCES), "piper")
    assert result == {"request_id": request_id, "chunks": 0, "cancelled": True}


def test_a_redelivered_request_is_not_spoken_twice():
    request_id = uuid.uuid4().hex
    services.tts_stream_publish(request_id, "Only once.", "piper")
    assert services.tts_stream_publish(request_id, "Only once.", "piper")["skipped"] is True
    assert len(list(TTSStream(request_id).chunks(timeout=5))) == 1


def test_worker_side_errors_reach_the_caller(settings):
    settings.COSYVOICE_URL = ""
    request_id = uuid.uuid4().hex
    services.tts_stream_publish(request_id, "Hello.", "cosyvoice")
    with pytest.raises(EngineUnavailable, match="COSYVOICE_URL") as err:
        list(TTSStream(request_id).chunks(timeout=5))
    assert err.value.status_code == 503


def test_no_worker_means_a_clear_timeout():
    with pytest.raises(EngineUnavailable, match="No speech from the TTS worker within 0.5 s"):
        list(TTSStream(uuid.uuid4().hex).chunks(timeout=0.5))


def test_the_worker_checks_the_request_and_the_reader_gets_the_error(eager_celery):
    with pytest.raises(InvalidInput, match="empty"):
        list(TTSStream().start("   ", "piper").chunks(timeout=5))
    with pytest.raises(InvalidInput) as err:
        list(TTSStream().start("Hello.", "nope").chunks(timeout=5))
    assert "piper" in err.value.extra["valid_tts_models"]
    with pytest.raises(InvalidInput) as err:
        list(TTSStream().start("Hello.", "espeak-ng", "xx-none").chunks(timeout=5))
    assert "en-us" in err.value.extra["valid_voices"]


def test_start_through_celery_runs_the_stream_task(eager_celery):
    client = TTSStream().start(" ".join(SENTENCES), "espeak-ng", "en-us")
    assert [c.text for c in client.chunks(timeout=10)] == SENTENCES
