"""Through a real Celery worker process serving the tts queue."""

import io
import time
import wave

import pytest

from contracts.tts_stream import TTSStream
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration]

TEXT = (
    "Good morning, and welcome to today's lesson about fractions. "
    "A fraction describes a part of a whole, like one half of a pizza. "
    "Let's start with a simple example that everybody knows."
)


def test_stream_arrives_sentence_by_sentence_from_the_worker(celery_worker_process):
    TTSStream().start("Warm up.", "piper").chunks(timeout=60).__next__()  # worker loads piper
    stream = TTSStream().start(TEXT, "piper")
    start = time.perf_counter()
    arrivals, chunks = [], []
    for chunk in stream.chunks(timeout=30):
        arrivals.append(time.perf_counter() - start)
        chunks.append(chunk)
    assert [c.text for c in chunks][:2] == ["Good morning,", "and welcome to today's lesson about fractions."]
    assert len(chunks) == 4
    assert arrivals[0] < arrivals[-1]
    assert all(c.timings and c.timings[-1].end_ms == pytest.approx(c.duration_ms) for c in chunks)


def test_cancel_stops_the_worker(celery_worker_process):
    text = " ".join(f"This is sentence number {i} of a very long lecture." for i in range(60))
    stream = TTSStream().start(text, "piper")
    next(stream.chunks(timeout=60))
    stream.cancel()
    assert list(stream.chunks(timeout=2)) == []
    # The worker is free again at once: a new request is answered promptly.
    start = time.perf_counter()
    next(TTSStream().start("Are you still there?", "espeak-ng").chunks(timeout=30))
    assert time.perf_counter() - start < 5


@pytest.mark.django_db
def test_preview_through_the_worker(api, celery_worker_process):
    # The worker publishes its engines when it is ready; the web lists and checks from that.
    wait_for(
        lambda: {m["id"]: m for m in api.get("/api/avatars/tts-models").json()}["piper"]["available"],
        timeout=60,
        message="the worker to publish piper",
    )
    body = {"text": "Hello from the worker.", "tts_model": "piper"}
    response = api.post("/api/tts/preview?wait=1", body, format="json")
    assert response.status_code == 200, response.content[:300]
    with wave.open(io.BytesIO(response.content)) as w:
        assert w.getframerate() == 22050 and w.getnframes() > 22050 * 0.8
    # Without wait: a job at once, whose result the worker fills in.
    job = api.post("/api/tts/preview", body, format="json").json()
    wait_for(lambda: api.get(job["result_url"]).status_code == 200, timeout=30, message="the preview job")
    assert api.get(job["result_url"])["Content-Type"] == "audio/wav"
