"""The renderer of a live session: one per session, long-lived, for all of its utterances.

It is one asyncio task on the runtime's event loop and one thread of its own:

- the task takes the texts to say from the session's queue of pending utterances, one after
  the other; for each it starts a TTS stream on the tts worker and waits for its sentences.
  Those Redis calls run in the loop's default executor and the task only awaits them, so an
  interrupt can abandon a wait the tts worker has not answered yet (the abandoned call ends
  by itself, its stream cancelled) and the next text starts at once;
- the renderer thread (a one-thread executor, created with the first sentence and reused
  for every one after) lip-syncs each sentence with the avatar's warmed engine and puts its
  ticks into the session's FrameQueue, blocking while it is full (the back-pressure that
  keeps speech at most MAX_AHEAD ticks ahead of the clock).

The thread shares nothing mutable with the loop but the FrameQueue and the utterances'
cancel events; everything else it needs comes in as arguments.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from contracts.errors import ServiceError

from ..engines.base import SAMPLES_PER_FRAME
from ..speech import segment_from_tts_chunk
from .frames import FrameQueue, SpeechEnd, SpeechTick, Utterance, idle_pictures
from .subtitles import word_starts

logger = logging.getLogger(__name__)

TTS_CHUNK_TIMEOUT = 30.0
TICK_MS = 40.0


class Renderer:
    """Owns the utterances waiting to be said, the one being rendered (and its TTS stream),
    the session's renderer thread, and the producing end of the FrameQueue. Its state is
    touched on the event loop only; the thread gets what it needs as arguments."""

    def __init__(
        self,
        avatar,
        frames: FrameQueue,
        *,
        first_step: Callable[[], int],
        report: Callable[[dict], None],
        name: str = "",
    ):
        self.avatar = avatar  # runtime.LiveAvatar
        self.frames = frames
        # () -> int: the idle-loop position a new utterance starts at (the clock knows).
        self._first_step = first_step
        self._report = report  # (event) -> None, for errors; called on the loop
        self.name = name
        self.loop = asyncio.get_running_loop()
        self._pending: deque[Utterance] = deque()
        self._wake = asyncio.Event()
        self.current: Utterance | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"live-render-{name}")
        self._task: asyncio.Task | None = None
        self._speaking: asyncio.Task | None = None
        self.closed = False

    # --- the session's side (event loop) -------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self._pending)

    @property
    def waiting(self) -> int:
        """Texts waiting behind the one being (or about to be) rendered."""
        return len(self._pending) - (1 if self._pending and self.current is None else 0)

    def start(self) -> None:
        if self._task is None and not self.closed:
            self._task = self.loop.create_task(self._run(), name=f"live-renderer-{self.name}")

    def add(self, utterance: Utterance) -> None:
        if self.closed:
            return
        self._pending.append(utterance)
        self._wake.set()

    def cancel(self) -> list[Utterance]:
        """Interrupt: cancel the utterance being rendered and every waiting one, and their
        TTS streams. The renderer is free for the next text at once; the caller drains the
        FrameQueue (which frees the thread if it is blocked on a full queue)."""
        dropped = ([self.current] if self.current is not None else []) + list(self._pending)
        self._pending.clear()
        self.current = None
        for utterance in dropped:
            utterance.cancel()
        if self._speaking is not None:
            self._speaking.cancel()
        streams = [u.stream for u in dropped if u.stream is not None]
        if streams:
            # Redis calls: off the loop, and nobody waits for them.
            self.loop.run_in_executor(None, _cancel_streams, streams)
        return dropped

    def close(self) -> None:
        if self.closed:
            return
        self.cancel()
        self.closed = True
        current = asyncio.current_task()
        for task in (self._speaking, self._task):
            if task is not None and task is not current:
                task.cancel()
        # The thread ends once its current sentence sees the cancel (at once: the queue was drained).
        self._thread.shutdown(wait=False, cancel_futures=True)

    # --- the renderer task (event loop) ---------------------------------------------------

    async def _run(self) -> None:
        while not self.closed:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            utterance = self._pending.popleft()
            if utterance.cancelled:
                continue
            self.current = utterance
            # Its own task, so that an interrupt can cancel it and this loop goes on.
            self._speaking = self.loop.create_task(self._speak(utterance))
            try:
                await asyncio.wait({self._speaking})
            finally:
                self._speaking = None
                if self.current is utterance:
                    self.current = None

    async def _speak(self, utterance: Utterance) -> None:
        """Stream the sentences from the tts worker and have the thread lip-sync each as it comes."""
        from contracts.tts_stream import TTSStream

        stream = utterance.stream = TTSStream()  # before start(), so that an interrupt cancels it
        try:
            await self.loop.run_in_executor(
                None,
                partial(
                    stream.start,
                    utterance.text,
                    utterance.tts_model,
                    utterance.voice,
                    reference_path=self.avatar.reference_path,
                    reference_text=self.avatar.reference_text,
                ),
            )
            step = self._first_step()
            offset_ms = 0.0
            chunks = stream.chunks(timeout=TTS_CHUNK_TIMEOUT)
            while True:
                chunk = await self.loop.run_in_executor(None, next, chunks, None)
                if chunk is None or utterance.cancelled:
                    break
                if utterance.first_audio_at is None:
                    utterance.first_audio_at = time.monotonic()
                frames = await self.loop.run_in_executor(self._thread, self._lipsync, utterance, chunk, step, offset_ms)
                step += frames
                offset_ms += frames * TICK_MS
        except ServiceError as exc:
            self._report({"type": "error", "detail": exc.detail, "utterance": utterance.id})
        except Exception:  # one failed text must not end the session
            logger.exception("Live renderer %s: speaking failed", self.name)
            self._report(
                {
                    "type": "error",
                    "detail": "Speaking failed on the worker (the error is in its log).",
                    "utterance": utterance.id,
                }
            )
        if not utterance.cancelled:
            await self.loop.run_in_executor(self._thread, self.frames.put, SpeechEnd(utterance), utterance.cancel_event)

    # --- the renderer thread --------------------------------------------------------------

    def _lipsync(self, utterance: Utterance, chunk, step: int, offset_ms: float) -> int:
        """Renderer thread: one sentence's ticks into the FrameQueue, rendered from idle-loop
        position `step`; returns the sentence's length in ticks."""
        warm = self.avatar.warm
        # Each frame made as it is sent (shrunk, converted) here, once, off the event loop.
        sent = idle_pictures(self.avatar).picture
        segment = segment_from_tts_chunk(chunk)
        frames = segment.frame_count
        pcm = np.zeros(frames * SAMPLES_PER_FRAME, np.int16)
        pcm[: len(segment.samples)] = np.clip(segment.samples * 32767.0, -32768, 32767).astype(np.int16)
        words = word_starts(chunk)
        w = 0
        for k, rendered in enumerate(warm.engine.render(warm.handle, segment, step)):
            if utterance.cancelled:
                break
            here = []
            while w < len(words) and words[w][1] < (k + 1) * TICK_MS:
                here.append({"text": words[w][0], "start_ms": round(offset_ms + words[w][1])})
                w += 1
            tick = SpeechTick(
                utterance,
                sent(rendered.image),
                pcm[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME],
                step + k,
                here,
                rendered.mouth_open,
            )
            if not self.frames.put(tick, utterance.cancel_event):
                break
        return frames


def _cancel_streams(streams) -> None:
    for stream in streams:
        try:
            stream.cancel()
        except Exception:  # the stream expires by itself
            logger.warning("Live renderer: could not cancel a TTS stream", exc_info=True)
