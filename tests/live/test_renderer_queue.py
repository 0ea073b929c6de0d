"""The renderer -> clock hand-over of a live session, in one process, with a fake TTS stream
and a fake lip-sync engine (no aiortc connection, no workers): the queue is bounded and the
renderer waits on it, an interrupt drains it and frees the renderer at once, and a session
has one renderer thread however many texts it says."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from contracts.speech import AudioChunk, Timing
from lipsync_worker.engines.base import SAMPLE_RATE, RenderedFrame
from lipsync_worker.live.dialogue import Dialogue
from lipsync_worker.live.frames import MAX_AHEAD, PUT_TIMEOUT, FrameQueue, SpeechEnd, Utterance
from lipsync_worker.live.peer import Peer
from lipsync_worker.live.runtime import LiveAvatar
from lipsync_worker.live.session import LiveSession

W, H = 64, 48
IDLE, SPEECH = 0, 200  # pixel values of the fake idle and speech frames
EXECUTOR_THREADS = 4


class FakeEngine:
    """Speech frames are flat SPEECH images; records the threads that render."""

    def __init__(self):
        self.rendered = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def render(self, handle, segment, first_frame):
        for k in range(segment.frame_count):
            with self._lock:
                self.rendered += 1
                self.threads.add(threading.current_thread().name)
            yield RenderedFrame(np.full((H, W, 3), SPEECH, np.uint8), first_frame + k, 0.5)


class FakeAssets:
    frame_count = 25
    size = (W, H)

    def idle_frame_index(self, k: int) -> int:
        return k % self.frame_count

    def frame(self, index: int) -> np.ndarray:
        return np.full((H, W, 3), IDLE, np.uint8)

    def frame_readonly(self, index: int) -> np.ndarray:
        image = self.frame(index)
        image.setflags(write=False)  # as AvatarAssets' cached frames: nobody may paint on them
        return image


class FakeWarm:
    def __init__(self):
        self.engine = FakeEngine()
        self.handle = object()
        self.assets = FakeAssets()


class FakeTTSStream:
    """Texts starting with "long" are one 10 s sentence; "stuck" never answers (like a tts
    worker that is busy: the wait ignores cancel, as Redis' BLPOP does, until released);
    others are one 0.4 s sentence with two words."""

    release = threading.Event()
    cancelled_ids: list[str] = []

    def __init__(self):
        self.text = ""
        self.cancelled = False

    def start(self, text, engine, voice="", *, reference_path="", reference_text=""):
        self.text = text
        return self

    def chunks(self, timeout=30.0):
        if self.text.startswith("stuck"):
            FakeTTSStream.release.wait(10)
            return
        seconds = 10.0 if self.text.startswith("long") else 0.4
        pcm = np.full(int(seconds * SAMPLE_RATE), 3000, np.int16)
        yield AudioChunk(
            pcm=pcm,
            sample_rate=SAMPLE_RATE,
            text=self.text,
            words=[Timing("Hello", 0.0, 100.0), Timing("there", 200.0, 300.0)],
        )

    def cancel(self):
        self.cancelled = True
        FakeTTSStream.cancelled_ids.append(self.text)


class FakeRuntime:
    channel = "test"

    def __init__(self):
        self.events: list[tuple[float, dict]] = []

    async def send(self, channel, message):
        self.events.append((time.monotonic(), message["event"]))

    async def session_closed(self, session):
        pass

    def of(self, kind: str) -> list[dict]:
        return [e for _t, e in self.events if e["type"] == kind]


@pytest.fixture(autouse=True)
def _fakes(monkeypatch):
    async def answer(self, sdp, sdp_type="offer"):
        return "answer"

    def show(self, picture, pcm, tick):
        value = int(cv2.cvtColor(picture, cv2.COLOR_YUV2BGR_I420)[0, 0, 0])  # the picture as a viewer sees it
        self.__dict__.setdefault("shown", []).append((time.monotonic(), value, bool(pcm.any())))

    async def no_conversation(self):
        return None  # no database here: the session's conversation is not what is tested

    monkeypatch.setattr(Peer, "answer", answer)
    monkeypatch.setattr(Peer, "show", show)
    monkeypatch.setattr(Dialogue, "open", no_conversation)
    monkeypatch.setattr("contracts.tts_stream.TTSStream", FakeTTSStream)
    FakeTTSStream.release = threading.Event()
    FakeTTSStream.cancelled_ids = []


def run_session(scenario):
    """Run `scenario(session, runtime)` in a session with its clock and renderer started."""

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="test-executor"))
        runtime = FakeRuntime()
        avatar = LiveAvatar(1, "fake", FakeWarm(), "piper", "", "", "")
        session = LiveSession(runtime, avatar, user_id=1, reply_to="viewer")
        assert await session.answer("offer") == "answer"
        try:
            return await scenario(session, runtime)
        finally:
            FakeTTSStream.release.set()
            await session.close()

    return asyncio.run(main())


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def shown(session) -> list[tuple[float, int, bool]]:
    return session.peer.__dict__.get("shown", [])


def test_frame_queue_is_bounded_and_drain_frees_a_blocked_put():
    frames = FrameQueue(maxsize=5)
    utterance = Utterance("x", "piper", "")
    for _ in range(5):
        assert frames.put(SpeechEnd(utterance), utterance.cancel_event)
    results = []
    putter = threading.Thread(target=lambda: results.append(frames.put(SpeechEnd(utterance), utterance.cancel_event)))
    putter.start()
    putter.join(0.5)
    assert putter.is_alive() and frames.qsize() == 5, "a full queue must make the renderer wait"
    started = time.monotonic()
    assert frames.drain() == 5
    putter.join(1.0)
    assert not putter.is_alive() and results == [True]
    assert time.monotonic() - started < 0.1, "draining must free a blocked put at once"
    assert frames.get_nowait() is not None and frames.get_nowait() is None

    # Cancelled while full and nobody drains: the put gives up (False), nothing queued.
    for _ in range(5):
        frames.put(SpeechEnd(utterance), utterance.cancel_event)
    putter = threading.Thread(target=lambda: results.append(frames.put(SpeechEnd(utterance), utterance.cancel_event)))
    putter.start()
    utterance.cancel()
    putter.join(PUT_TIMEOUT + 1.0)
    assert not putter.is_alive() and results[-1] is False and frames.qsize() == 5


def test_renderer_stays_at_most_max_ahead_of_the_clock():
    async def scenario(session, runtime):
        engine = session.avatar.warm.engine
        await session.say("long text")
        await wait_until(lambda: session.frames.qsize() >= MAX_AHEAD, 5, "the queue to fill")
        samples = []
        for _ in range(30):  # 1.2 s of ticks
            samples.append((session.frames.qsize(), engine.rendered, session.stats["speech_ticks"]))
            await asyncio.sleep(0.04)
        return samples

    samples = run_session(scenario)
    assert all(size <= MAX_AHEAD for size, _r, _s in samples), samples
    # The renderer is held back by the clock (250 frames would be rendered at once otherwise).
    assert all(rendered <= played + MAX_AHEAD + 2 for _q, rendered, played in samples), samples
    assert samples[-1][2] - samples[0][2] >= 15, "the clock shows the speech while the renderer waits"
    assert samples[-1][1] < 250


def test_interrupt_drains_the_queue_frees_the_renderer_and_the_next_tick_is_idle():
    async def scenario(session, runtime):
        engine = session.avatar.warm.engine
        await session.say("long text")
        await wait_until(lambda: runtime.of("speaking_started"), 5, "speaking_started")
        await wait_until(lambda: session.frames.qsize() >= MAX_AHEAD, 5, "the queue to fill")
        await asyncio.sleep(0.2)  # the renderer thread now waits in put()
        rendered_before = engine.rendered
        t_interrupt = time.monotonic()
        await session.interrupt()
        result = {"after_interrupt_qsize": session.frames.qsize(), "speaking": session.speaking}
        await asyncio.sleep(0.5)
        result["rendered_after"] = engine.rendered - rendered_before
        result["ticks_after"] = [(value, loud) for t, value, loud in shown(session) if t > t_interrupt]
        result["ended"] = runtime.of("speaking_ended")
        result["cancelled_streams"] = list(FakeTTSStream.cancelled_ids)
        # The renderer (and its thread) is free: the next text is seen within a few ticks.
        t_say = time.monotonic()
        await session.say("short text")
        await wait_until(lambda: len(runtime.of("speaking_started")) == 2, 2, "the next text to start")
        result["next_start_ms"] = (time.monotonic() - t_say) * 1000
        return result

    result = run_session(scenario)
    assert result["after_interrupt_qsize"] <= 1, "interrupt drains the queue"  # at most the one put it freed
    assert result["speaking"] is False
    assert result["rendered_after"] <= 2, "the freed renderer must stop rendering the cancelled text"
    assert result["ticks_after"] and all(value == IDLE and not loud for value, loud in result["ticks_after"]), result[
        "ticks_after"
    ][:5]
    assert result["ended"] == [
        {"type": "speaking_ended", "utterance": result["ended"][0]["utterance"], "interrupted": True}
    ]
    assert result["cancelled_streams"] == ["long text"]
    assert result["next_start_ms"] < 500, result["next_start_ms"]


def test_a_text_after_an_interrupt_starts_while_the_old_tts_wait_is_still_stuck():
    async def scenario(session, runtime):
        await session.say("stuck text")
        await asyncio.sleep(0.2)  # the renderer waits for the tts worker, which does not answer
        assert session.speaking
        t_say = time.monotonic()
        await session.say("short text", interrupt=True)
        await wait_until(lambda: runtime.of("speaking_started"), 2, "the new text to start")
        started_ms = (time.monotonic() - t_say) * 1000
        assert not FakeTTSStream.release.is_set()  # the old wait is still blocked
        await wait_until(lambda: runtime.of("speaking_ended"), 3, "the new text to end")
        return started_ms, runtime.of("speaking_started"), runtime.of("speaking_ended")

    started_ms, started, ended = run_session(scenario)
    assert started_ms < 500, started_ms
    assert [e["text"] for e in started] == ["short text"]
    assert ended[0]["interrupted"] is False and ended[0]["utterance"] == started[0]["utterance"]


def test_one_renderer_thread_per_session_whatever_the_number_of_texts():
    counts = {}

    async def scenario(session, runtime):
        counts["before"] = threading.active_count()
        for i in range(4):  # said to the end, one after the other
            await session.say(f"text {i}")
            await wait_until(lambda n=i: len(runtime.of("speaking_ended")) == n + 1, 5, f"text {i} to end")
        for i in range(4):  # interrupted while the renderer waits on a full queue
            await session.say(f"long text {i}", interrupt=True)
            await wait_until(lambda: session.frames.qsize() >= MAX_AHEAD, 5, "the queue to fill")
        await session.say("text last", interrupt=True)
        await wait_until(
            lambda: sum(not e["interrupted"] for e in runtime.of("speaking_ended")) == 5, 5, "the last text to end"
        )
        counts["after"] = threading.active_count()
        counts["render_threads"] = [t.name for t in threading.enumerate() if t.name.startswith("live-render-")]
        return list(runtime.events)

    events = run_session(scenario)
    # The same renderer thread rendered every text; no thread per text.
    assert len(counts["render_threads"]) == 1, counts
    assert counts["after"] - counts["before"] <= 1 + EXECUTOR_THREADS, counts
    # Each text said to the end: speaking_started, its words, speaking_ended, in that order.
    by_utterance: dict[int, list[str]] = {}
    for _t, event in events:
        if "utterance" in event:
            by_utterance.setdefault(event["utterance"], []).append(event["type"])
    completed = [kinds for kinds in by_utterance.values() if kinds[-1:] == ["speaking_ended"]]
    assert len(completed) >= 5
    for kinds in completed:
        assert kinds[0] == "speaking_started" and kinds.count("speaking_started") == 1, kinds
        assert "word" in kinds, kinds


def test_the_engine_runs_on_the_single_renderer_thread_which_ends_with_the_session():
    threads = {}

    async def scenario(session, runtime):
        for i in range(3):
            await session.say(f"text {i}")
        await session.say("long text")
        await wait_until(lambda: len(runtime.of("speaking_ended")) == 3, 5, "three texts to end")
        threads["render"] = [t for t in threading.enumerate() if t.name.startswith("live-render-")]
        threads["engine"] = set(session.avatar.warm.engine.threads)

    run_session(scenario)
    assert len(threads["render"]) == 1
    assert threads["engine"] == {threads["render"][0].name}
    threads["render"][0].join(2.0)
    assert not threads["render"][0].is_alive(), "closing the session ends its renderer thread"


def test_the_viewer_gets_the_events_in_the_order_they_happened():
    """The channel layer's send awaits (its Redis connection) for longer or shorter: one
    utterance's speaking_ended still reaches the viewer before the next one's speaking_started."""

    async def scenario(session, runtime):
        real_send = runtime.send
        delays = iter([0.05, 0.0, 0.03, 0.0, 0.01, 0.0])

        async def slow_send(channel, message):
            await asyncio.sleep(next(delays, 0.0))
            await real_send(channel, message)

        runtime.send = slow_send
        runtime.events.clear()
        for utterance in (1, 2, 3):
            session.emit_soon({"type": "speaking_ended", "utterance": utterance, "interrupted": False})
            session.emit_soon({"type": "speaking_started", "utterance": utterance + 1, "latency_ms": 0})
        # An interrupt's event (awaited, not "soon") still comes after what was emitted before it.
        await session.emit({"type": "speaking_ended", "utterance": 4, "interrupted": True})
        return [(e["type"], e["utterance"]) for _t, e in runtime.events]

    order = run_session(scenario)
    assert order == [
        (kind, utterance + shift)
        for utterance in (1, 2, 3)
        for kind, shift in (("speaking_ended", 0), ("speaking_started", 1))
    ] + [("speaking_ended", 4)]
