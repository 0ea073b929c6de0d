"""Conversations: voice-to-voice latency, its breakdown, barge-in, with both responders.

    python bench/bench_conversation.py [--questions 5]
    (or CONVERSATION_BENCH_QUESTIONS with `python -m tutor_site.launcher bench bench_conversation.py`)

Starts its own worker (threads pool, as `make run`) and daphne on a throw-away SQLite
database, makes an avatar with a knowledge base, starts it, and talks to it with an aiortc
viewer whose microphone sends real speech (piper) on loopback.

- voice-to-voice: the end of the student's speech (its last sample sent) -> the first
  audible answer audio at the viewer; goal <= 800 ms with the `knowledge` responder, and
  the LLM's time to first token + <= 500 ms with `openai` (a stand-in server that answers
  after a fixed delay, so the figure is ours, not a model's);
- its breakdown as the worker measured it (the `turn` event): speech end -> final
  transcript, -> first answer text, -> first audio from the tts worker, -> first frame;
- barge-in: the student's speech onset -> the avatar's audio silent at the viewer; goal
  <= 300 ms.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATA = Path(tempfile.mkdtemp(prefix="vt-bench-conversation-"))
os.environ["DATA_DIR"] = str(BENCH_DATA)
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("REDIS_KEY_PREFIX", "vt-bench-conversation")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from contracts.conversation import ASR_SAMPLE_RATE  # noqa: E402
from tests.conversation.speech import piper_speech, silence, speech_span  # noqa: E402
from tests.live.client import LiveClient, Microphone, first_loud_after, loopback_only_ice, loud  # noqa: E402

KNOWLEDGE = (
    "France is a country in western Europe. The capital of France is Paris, a city on the river Seine.\n\n"
    "A spider has eight legs and two body parts. Insects such as ants have six legs.\n\n"
    "The moon goes around the earth about once a month. Its light is sunlight reflected from its surface. "
    "The moon has no air, so there is no weather and no sound there. People first walked on the moon in 1969. "
    "Astronauts left footprints that will stay for millions of years, because no wind blows them away."
)
QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Why is there no sound on the moon?",
]
LLM_FIRST_TOKEN_MS = 300
LLM_ANSWER = "Paris is the capital of France. It lies on the river Seine, in the north of the country."


_WORLD: dict = {}


def setup_world(name: str, llm_model: str):
    """An avatar (made from generated media once) answering with `llm_model`; its admin's token."""
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    from avatars.models import Avatar
    from avatars.storage import storage_save
    from lipsync_worker.asset_pipeline import preprocess_video
    from tests import media
    from tutors.services import admin_create, tutor_create

    if not _WORLD:
        call_command("migrate", verbosity=0)
        video = media.write_video(BENCH_DATA / "face.mp4", media.face_frames(2.0), audio_seconds=2.0)
        result = preprocess_video(video, BENCH_DATA / "assets", expected_seconds=10)
        for file_name, path in result.files.items():
            storage_save(f"bench/assets/{file_name}", path)
        user, _ = admin_create(email="bench@bench.test", password="bench-password")
        _WORLD.update(result=result, user=user, tutor=tutor_create(owner=user, name="Bench"))
    result = _WORLD["result"]
    avatar = Avatar.objects.create(
        tutor=_WORLD["tutor"],
        name=name,
        status="inactive",
        assets_path="bench/assets",
        avatar_model="viseme",
        tts_model="piper",
        llm_model=llm_model,
        frame_count=result.frame_count,
        width=result.width,
        height=result.height,
    )
    return avatar, str(RefreshToken.for_user(_WORLD["user"]).access_token)


def api(daphne, token: str, method: str, path: str, body: dict | None = None, timeout: float = 180):
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{daphne.url}{path}",
        data=json.dumps(body or {}).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"{}")


def fmt(values, goal=None):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    median = statistics.median(values)
    text = f"median={median:.0f} ms  max={max(values):.0f} ms  (n={len(values)})"
    return text + (f"  goal<={goal:.0f}  ratio={median / goal:.2f}" if goal else "")


async def silent_after(client, since: float, quiet: float = 0.2, timeout: float = 5.0) -> float | None:
    """The first moment after `since` from which the viewer hears nothing for `quiet` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        audio = [(t, r) for t, _p, r in client.recorder.audio if t > since]
        last_loud = since
        for t, r in audio:
            if loud(r):
                last_loud = t
            elif t - last_loud >= quiet:
                return last_loud
    return None


async def converse(daphne, avatar, token, questions: list[str], barge_in: bool):
    client = LiveClient(daphne.ws_url, avatar.pk, token, keep_frames=False, microphone=Microphone())
    assert (await client.connect())["type"] == "answer"
    await client.wait_event(lambda e: e.get("state") == "connected", 20)
    await asyncio.sleep(1.0)
    voice, breakdown, bargein = [], [], []
    for text in questions:
        speech = np.concatenate([piper_speech(text), silence(0.1)])
        sent = await client.microphone.say(speech)
        # Piper pads its speech with near-silence: the student stopped speaking before that.
        spoken_end = sent - (len(speech) / ASR_SAMPLE_RATE - speech_span(speech)[1])
        turn = await client.wait_event(lambda e: e.get("type") == "turn", 20)
        heard = await first_loud_after(client, spoken_end)
        voice.append(None if heard is None else (heard - spoken_end) * 1000)
        breakdown.append(turn["latencies"])
        if barge_in:
            await asyncio.sleep(0.6)  # the answer is playing
            stop = piper_speech("Stop, please.")
            ended = client.microphone.say(stop)  # sent from the next 20 ms frame on
            onset = time.monotonic() + speech_span(stop)[0]
            quiet = await silent_after(client, onset)
            bargein.append(None if quiet is None else (quiet - onset) * 1000)
            await ended
        await client.wait_event(lambda e: e.get("type") == "speaking_ended", 30)
        await asyncio.sleep(1.5)
    await client.close()
    return voice, breakdown, bargein


def print_breakdown(breakdown):
    for key in ("asr_ms", "first_token_ms", "first_audio_ms", "first_frame_ms"):
        print(f"  speech end -> {key[:-3].replace('_', ' '):12s} {fmt([b.get(key) for b in breakdown])}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--questions", type=int, default=int(os.environ.get("CONVERSATION_BENCH_QUESTIONS", len(QUESTIONS)))
    )
    args = parser.parse_args()
    questions = (QUESTIONS * args.questions)[: args.questions]
    loopback_only_ice()

    from django.conf import settings

    from tests.conftest import DaphneServer, WorkerProcess
    from tests.conversation.llm_standin import LLMStandInServer

    llm = LLMStandInServer().__enter__()
    llm.script(answer=LLM_ANSWER, first_token_delay=LLM_FIRST_TOKEN_MS / 1000, token_delay=0.02)
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        REDIS_URL=settings.REDIS_URL,
        LOG_LEVEL="WARNING",
        LLM_BASE_URL=f"{llm.url}/v1",
        LLM_MODEL="standin-model",
    )
    knowledge_avatar, token = setup_world("bench_knowledge", "knowledge")
    llm_avatar, _ = setup_world("bench_llm", "openai")
    worker = WorkerProcess(env, BENCH_DATA / "worker.log", "bench")
    daphne = DaphneServer(env, BENCH_DATA / "daphne.log")
    try:
        for avatar in (knowledge_avatar, llm_avatar):
            api(daphne, token, "POST", f"/api/avatars/{avatar.pk}/knowledge", {"title": "Facts", "text": KNOWLEDGE})
            status, _ = api(daphne, token, "POST", f"/api/avatars/{avatar.pk}/start?wait=1")
            assert status == 200, status

        voice, breakdown, bargein = asyncio.run(converse(daphne, knowledge_avatar, token, questions, barge_in=True))
        print("knowledge responder (offline: VAD, pocketsphinx, retrieval, piper, viseme):")
        print(f"voice-to-voice (speech end -> first answer audio at the viewer) {fmt(voice, 800)}")
        print_breakdown(breakdown)
        print(f"barge-in (speech onset -> avatar silent at the viewer) {fmt(bargein, 300)}")

        voice, breakdown, _ = asyncio.run(converse(daphne, llm_avatar, token, questions[:3], barge_in=False))
        print(f"openai responder (stand-in server, first token after {LLM_FIRST_TOKEN_MS} ms):")
        print(f"voice-to-voice {fmt(voice)}")
        # What we add to the model's own time to first token: its first token -> first audio heard.
        after_token = [
            v - b["first_token_ms"] for v, b in zip(voice, breakdown, strict=True) if v and b.get("first_token_ms")
        ]
        print(f"  first token -> first answer audio at the viewer {fmt(after_token, 500)}")
        print_breakdown(breakdown)
    finally:
        daphne.stop()
        worker.stop()
        llm.__exit__(None, None, None)


if __name__ == "__main__":
    main()
