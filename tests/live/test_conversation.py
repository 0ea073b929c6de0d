"""A student talks to the avatar through the real stack: an aiortc viewer whose microphone
sends real speech (piper) -> the worker's peer -> VAD -> pocketsphinx -> the knowledge base
-> the `knowledge` responder -> piper on the tts queue -> lip-sync -> WebRTC back.

What a student (and their tutor) would check: the question is understood, the answer comes
from the avatar's document, it is heard and the mouth moves, speaking over it stops it, noise
gets no answer, and the conversation is recorded for its admin only.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.conversation.speech import noise, piper_speech, silence
from tests.live.client import LiveClient, Microphone, first_loud_after, mouth_motion

pytestmark = [pytest.mark.integration]


def _events(client, kind: str, since: float = 0.0) -> list[dict]:
    return [e for t, e in client.events if e.get("type") == kind and t >= since]


def test_a_spoken_question_is_answered_from_the_knowledge_base_and_recorded(
    conversing_avatar, daphne_server, token, live_assets, api, other_api
):
    from django.core.files.storage import default_storage

    from lipsync_worker.assets import AvatarAssets

    assets = AvatarAssets.from_dir(default_storage.path(live_assets[0]))
    import cv2

    idle = [cv2.cvtColor(assets.frame(i), cv2.COLOR_BGR2GRAY)[::2, ::2] for i in range(assets.frame_count)]
    question = piper_speech("What is the capital of France?")
    result = {}

    async def scenario():
        client = LiveClient(daphne_server.ws_url, conversing_avatar.pk, token, microphone=Microphone())
        answer = await client.connect()
        assert answer["type"] == "answer", answer
        # The greeting is said once the viewer is connected.
        greeting = await client.wait_event(lambda e: e.get("type") == "speaking_started", 30)
        result["greeting"] = greeting["text"]
        await client.wait_event(lambda e: e.get("type") == "speaking_ended", 30)

        spoken_end = await client.microphone.say(np.concatenate([question, silence(0.2)]))
        transcript = await client.wait_event(lambda e: e.get("type") == "user_transcript" and e["final"], 20)
        result["partials"] = [e for e in _events(client, "user_transcript") if not e["final"]]
        result["transcript"] = transcript["text"]
        turn = await client.wait_event(lambda e: e.get("type") == "turn", 20)
        result["latencies"] = turn["latencies"]
        first_loud = await first_loud_after(client, spoken_end)
        result["voice_to_voice_ms"] = None if first_loud is None else (first_loud - spoken_end) * 1000
        frames_before = len(client.recorder.frames)
        result["turn_ended"] = await client.wait_event(lambda e: e.get("type") == "turn_ended", 30)
        result["answer"] = _events(client, "answer_text")[-1]["text"]
        result["speech_frames"] = client.recorder.frames[frames_before:]
        await client.close(bye=True)

    asyncio.run(scenario())

    assert result["greeting"] == "Hello, I am Ada."
    assert result["turn_ended"]["interrupted"] is False, "the answer was said to its end"
    assert "capital" in result["transcript"] and "france" in result["transcript"].lower(), result["transcript"]
    assert result["partials"], "no partial transcript while the student spoke"
    # The best passage, from the sentence that matches the question, trimmed to a few sentences.
    assert result["answer"].startswith("The capital of France is Paris"), result["answer"]
    assert "Atlantic" not in result["answer"], result["answer"]
    assert result["voice_to_voice_ms"] is not None, "the answer was not heard"
    assert set(result["latencies"]) == {"asr_ms", "first_token_ms", "first_audio_ms", "first_frame_ms"}
    assert all(isinstance(v, int) for v in result["latencies"].values()), result["latencies"]
    motion = mouth_motion(result["speech_frames"], idle)
    assert np.percentile(motion, 75) > 5, "the mouth did not move while answering"

    # The conversation is recorded, in order, for the avatar's admin.
    from tests.conftest import wait_for

    def recorded():
        rows = api.get(f"/api/avatars/{conversing_avatar.pk}/conversations").json()["conversations"]
        if not rows:
            return None
        detail = api.get(f"/api/avatars/{conversing_avatar.pk}/conversations/{rows[0]['id']}").json()
        return detail if len(detail.get("turns", [])) >= 3 else None

    detail = wait_for(recorded, timeout=15, message="the conversation to be recorded")
    turns = detail["turns"]
    assert [t["role"] for t in turns[:3]] == ["avatar", "student", "avatar"], turns
    assert turns[0]["text"] == "Hello, I am Ada."
    assert "capital" in turns[1]["text"]
    latency = turns[2]["latency"]
    assert "Paris" in turns[2]["text"] and not turns[2]["interrupted"]
    # Recorded once said to its end: the whole turn took longer than its first frame.
    assert latency["total_ms"] > latency["first_frame_ms"] >= latency["first_audio_ms"] > latency["asr_ms"]
    # Another admin sees none of it.
    assert other_api.get(f"/api/avatars/{conversing_avatar.pk}/conversations").status_code == 404
    assert other_api.get(f"/api/avatars/{conversing_avatar.pk}/conversations/{detail['id']}").status_code == 404


def test_speaking_over_an_answer_stops_it_typed_questions_work_and_noise_is_ignored(
    conversing_avatar, daphne_server, token
):
    result = {}

    async def scenario():
        client = LiveClient(daphne_server.ws_url, conversing_avatar.pk, token, microphone=Microphone())
        assert (await client.connect())["type"] == "answer"
        await client.wait_event(lambda e: e.get("type") == "speaking_ended", 30)  # the greeting

        # A typed question.
        await client.send({"type": "ask", "text": "How many legs does a spider have?"})
        answer = await client.wait_event(lambda e: e.get("type") == "answer_text", 20)
        result["typed_answer"] = answer["text"]
        await client.wait_event(lambda e: e.get("type") == "speaking_ended", 30)

        # A long answer, spoken over by the student.
        await client.send({"type": "ask", "text": "Tell me about the moon and its light."})
        await client.wait_event(lambda e: e.get("type") == "turn", 20)
        await asyncio.sleep(0.5)
        interruption = piper_speech("Wait, please stop.")
        heard_end = client.microphone.say(interruption)
        onset = time.monotonic()
        ended = await client.wait_event(lambda e: e.get("type") == "speaking_ended", 10)
        result["barge_in"] = ended
        result["barge_in_ms"] = (time.monotonic() - onset) * 1000
        await heard_end

        # Noise on the microphone: nothing is transcribed, nothing answered.
        await asyncio.sleep(3.0)  # the interruption's own question and answer go by
        before = time.monotonic()
        await client.microphone.say(noise(2.0, level=0.03))
        await asyncio.sleep(2.0)
        result["after_noise"] = _events(client, "user_transcript", before) + _events(client, "answer_text", before)

        # Bad input: a question past the limit.
        await client.send({"type": "ask", "text": "why " * 400})
        result["too_long"] = await client.wait_event(lambda e: e.get("type") == "error", 5)
        await client.close(bye=True)

    asyncio.run(scenario())

    assert "eight" in result["typed_answer"].lower(), result["typed_answer"]
    assert result["barge_in"]["interrupted"] is True, result["barge_in"]
    assert not result["after_noise"], result["after_noise"]
    assert "too long" in result["too_long"]["detail"], result["too_long"]
