"""The student's microphone in a live session: voice activity and speech recognition.

A task on the runtime's event loop reads the audio track the page sends on the session's
peer connection and resamples it to 16 kHz mono (cheap); a thread of the session's own runs
the voice activity detector on every piece and, while the student speaks, the ASR engine's
transcriber, so neither ever holds up the clock. The thread reports back on the loop:
speech started (barge-in), partial transcripts, and the final transcript of a question with
the moment the student stopped speaking (the start of the answer's latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from contracts.conversation import ASR_SAMPLE_RATE
from contracts.errors import ServiceError

logger = logging.getLogger(__name__)

# Audio kept from before the detector says "start" (it says so only after VAD_MIN_SPEECH_MS
# of speech): the transcriber gets the question from its first syllable.
PREROLL_SECONDS = 0.6
# Pieces waiting for the thread; beyond this (a stalled thread) the oldest are dropped.
MAX_QUEUED = 500


@dataclass(frozen=True)
class HeardQuestion:
    text: str
    speech_end: float  # time.monotonic() when the student stopped speaking
    asr_done: float  # ... and when the final transcript was ready


class Listener:
    """Hears one student. Callbacks run on the event loop:
    `on_speech_start()`, `on_partial(text)`, `on_question(HeardQuestion)`, `on_error(detail)`."""

    def __init__(
        self,
        *,
        asr_model: str,
        language: str,
        on_speech_start: Callable[[], None],
        on_partial: Callable[[str], None],
        on_question: Callable[[HeardQuestion], None],
        on_error: Callable[[str], None],
        name: str = "",
    ):
        self.asr_model = asr_model
        self.language = language
        self.loop = asyncio.get_running_loop()
        self._callbacks = (on_speech_start, on_partial, on_question, on_error)
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_QUEUED)
        self._stop = threading.Event()
        self._reader: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name=f"live-listen-{name}", daemon=True)
        self.name = name
        self._asr_failed = False

    def attach(self, track) -> None:
        """Start hearing `track` (the page's microphone, an aiortc remote audio track)."""
        if self._reader is not None:
            return
        self._reader = self.loop.create_task(self._read(track))
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(queue.Full):  # a full queue: the thread sees the stop flag
            self._queue.put_nowait(None)

    # --- the event loop: received frames to 16 kHz mono ---------------------------------

    async def _read(self, track) -> None:
        import av
        from aiortc.mediastreams import MediaStreamError

        resampler = av.AudioResampler(format="flt", layout="mono", rate=ASR_SAMPLE_RATE)
        while not self._stop.is_set():
            try:
                frame = await track.recv()
            except (MediaStreamError, asyncio.CancelledError):
                return
            arrived = time.monotonic()
            for out in resampler.resample(frame):
                pcm = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                try:
                    self._queue.put_nowait((pcm, arrived))
                except queue.Full:  # the thread is stuck: drop the oldest, keep the newest
                    self._queue.get_nowait()
                    self._queue.put_nowait((pcm, arrived))

    # --- the listener thread: VAD and ASR -------------------------------------------------

    def _post(self, index: int, *args) -> None:
        if not self._stop.is_set():
            self.loop.call_soon_threadsafe(self._callbacks[index], *args)

    def _run(self) -> None:
        try:
            self._hear()
        except ServiceError as exc:
            self._post(3, exc.detail)
        except Exception:
            logger.exception("Live listener %s stopped", self.name)
            self._post(3, "Listening failed on the worker (the error is in its log); typed questions still work.")

    def _transcriber(self, engine):
        """A transcriber for the utterance that starts; None (said once) when the avatar's
        ASR engine cannot run here."""
        try:
            return engine.transcriber(self.language)
        except ServiceError as exc:
            if not self._asr_failed:
                self._asr_failed = True
                self._post(3, f"{exc.detail} Typed questions still work.")
            return None

    def _accept(self, transcriber, pcm: np.ndarray):
        """Feed the utterance's transcriber; None when it failed (said; listening goes on)."""
        try:
            partial = transcriber.accept(pcm)
        except ServiceError as exc:
            self._post(3, f"{exc.detail} Please ask again, or type the question.")
            return None
        if partial is not None:
            self._post(1, partial)
        return transcriber

    def _hear(self) -> None:
        from ..conversation.asr import asr_engine_get
        from ..conversation.vad import SpeechDetector

        engine = asr_engine_get(self.asr_model)
        detector = SpeechDetector()
        preroll: deque[np.ndarray] = deque()
        preroll_samples = 0
        fed = 0  # samples given to the detector
        transcriber = None
        utterance_samples = 0
        max_samples = int(settings.ASR_MAX_UTTERANCE_SECONDS * ASR_SAMPLE_RATE)
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            pcm, arrived = item
            fed += len(pcm)
            events = detector.feed(pcm)
            starts = [e for e in events if e.kind == "start"]
            ends = [e for e in events if e.kind == "end"]
            if transcriber is None:
                preroll.append(pcm)
                preroll_samples += len(pcm)
                while preroll and preroll_samples - len(preroll[0]) >= PREROLL_SECONDS * ASR_SAMPLE_RATE:
                    preroll_samples -= len(preroll.popleft())
                if starts:
                    self._post(0)  # barge-in works even when the words cannot be understood
                    audio = np.concatenate(preroll)
                    preroll.clear()
                    preroll_samples = 0
                    transcriber = self._transcriber(engine)
                    if transcriber is None:
                        continue
                    utterance_samples = len(audio)
                    transcriber = self._accept(transcriber, audio)
            else:
                utterance_samples += len(pcm)
                transcriber = self._accept(transcriber, pcm)
            if transcriber is not None and (ends or utterance_samples >= max_samples):
                # Where the speech ended, in the audio, back to the time it arrived.
                end_at = ends[-1].at if ends else fed / ASR_SAMPLE_RATE
                speech_end = arrived - max(0.0, fed / ASR_SAMPLE_RATE - end_at)
                try:
                    text = transcriber.finish()
                except ServiceError as exc:  # e.g. the ASR server failed: this question is lost
                    self._post(3, f"{exc.detail} Please ask again, or type the question.")
                    text = ""
                transcriber = None
                if ends == [] and detector.speaking:
                    detector.reset()  # cut at the maximum length: the rest is a new question
                # Even empty (noise, a failed ASR): the page stops showing "listening".
                self._post(2, HeardQuestion(text.strip(), speech_end, time.monotonic()))
