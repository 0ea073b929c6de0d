"""What the renderer hands to the clock: utterances, their rendered ticks, and the bounded
queue between the two.

The renderer thread puts (`FrameQueue.put`, blocking while the queue is full: that is the
back-pressure, so rendered speech never runs more than MAX_AHEAD ticks ahead of the clock);
the clock, on the event loop, takes one item per tick without ever waiting
(`FrameQueue.get_nowait`). An interrupt marks the utterances cancelled (a `threading.Event`,
seen by both sides) and drains the queue, which also frees a renderer blocked on a full one.
Nothing else is shared between the two threads.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

# Rendered speech may run this many ticks (2 s) ahead of the clock; it bounds memory per
# session and what an interrupt has to throw away.
MAX_AHEAD = 50
# A blocked `put` wakes at once when the queue is drained (an interrupt drains it); this
# only bounds how long it takes to notice a cancellation that came without a drain.
PUT_TIMEOUT = 0.25

_utterance_ids = itertools.count(1)


@dataclass(eq=False)
class Utterance:
    """One text to say. Created and read on the event loop; the renderer thread reads its
    immutable fields and `cancelled`, which is thread-safe."""

    text: str
    tts_model: str
    voice: str
    id: int = field(default_factory=lambda: next(_utterance_ids))
    said_at: float = field(default_factory=time.monotonic)
    stream: object = None  # its contracts.tts_stream.TTSStream, once started (event loop only)
    first_audio_at: float | None = None  # time.monotonic() its first audio came from the tts worker
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()


@dataclass
class SpeechTick:
    """One rendered 40 ms tick of an utterance: the frame, its 640 samples, the words that
    start in it."""

    utterance: Utterance
    image: np.ndarray
    pcm: np.ndarray
    step: int  # the idle-loop position it was rendered at
    words: list
    mouth_open: float


@dataclass
class SpeechEnd:
    """The utterance has no more ticks."""

    utterance: Utterance


class FrameQueue:
    """The bounded, thread-safe hand-over from the renderer thread to the clock."""

    def __init__(self, maxsize: int = MAX_AHEAD):
        self.maxsize = maxsize
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)

    def put(self, item: SpeechTick | SpeechEnd, cancelled: threading.Event) -> bool:
        """Renderer thread: queue `item`, waiting while the queue is full. Returns False,
        without queueing it, when `cancelled` is set first."""
        while not cancelled.is_set():
            try:
                self._queue.put(item, timeout=PUT_TIMEOUT)
                return True
            except queue.Full:
                continue
        return False

    def get_nowait(self) -> SpeechTick | SpeechEnd | None:
        """Clock: the next item, or None at once when there is none."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def drain(self) -> int:
        """Drop everything queued (interrupt); a renderer blocked in `put` gets room at once."""
        dropped = 0
        while self.get_nowait() is not None:
            dropped += 1
        return dropped

    def qsize(self) -> int:
        return self._queue.qsize()
