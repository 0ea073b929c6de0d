"""What the renderer hands to the clock: utterances, their rendered ticks, and the bounded
queue between the two.

The renderer thread puts (`FrameQueue.put`, blocking while the queue is full: that is the
back-pressure, so rendered speech never runs more than MAX_AHEAD ticks ahead of the clock);
the clock, on the event loop, takes one item per tick without ever waiting
(`FrameQueue.get_nowait`). An interrupt marks the utterances cancelled (a `threading.Event`,
seen by both sides) and drains the queue, which also frees a renderer blocked on a full one.
Nothing else is shared between the two threads.

Pictures travel as they are sent: at the sent size (frame_size.video_size:
LIVE_VIDEO_MAX_HEIGHT) and in I420, the planar YUV 4:2:0 both encoders take
(`sent_picture`). An engine that renders at any size has the avatar loaded at that size
(warm_avatars), so nothing is shrunk; otherwise the renderer shrinks each speech frame once,
and the idle loop is shrunk once per avatar. The renderer thread converts each speech frame,
and the idle pictures are converted once and kept for all the avatar's sessions
(`idle_pictures`), so the event loop, which every session of the worker shares, only
wraps them in frames (issue #14).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..frame_size import fit_frame, video_size

# Rendered speech may run this many ticks (2 s) ahead of the clock; it bounds memory per
# session and what an interrupt has to throw away.
MAX_AHEAD = 50
# A blocked `put` wakes at once when the queue is drained (an interrupt drains it); this
# only bounds how long it takes to notice a cancellation that came without a drain.
PUT_TIMEOUT = 0.25
# The worker keeps its avatars' idle pictures up to this many bytes in all (about 800
# pictures of 404x540: a 30 s loop); beyond it they are made on use (0.3 ms each, in a thread).
IDLE_CACHE_BYTES = 256 * 1024 * 1024

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
    picture: np.ndarray  # as it is sent: I420 at the avatar's sent size (sent_picture)
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


class IdlePictures:
    """An avatar's idle-loop pictures as they are sent (`sent_picture`), made once (in an
    executor thread) and shared by every session of the avatar."""

    def __init__(self, avatar):
        # The avatar's WarmAvatar, not the LiveAvatar itself: the entry of `_idle_pictures`
        # (keyed weakly by the LiveAvatar) must not keep its own key alive.
        self.warm = avatar.warm
        self.size: tuple[int, int] | None = None  # (width, height), from the first frame seen
        self._pictures: dict[int, np.ndarray] = {}
        # What they count against IDLE_CACHE_BYTES, given back when they go.
        self._bytes = [0]
        weakref.finalize(self, _idle_release, self._bytes)

    def get(self, index: int) -> np.ndarray | None:
        """On the event loop: the picture when it is made already."""
        return self._pictures.get(index)

    def picture(self, image: np.ndarray) -> np.ndarray:
        """A frame of this avatar (BGR, any size) as it is sent."""
        if self.size is None:
            self.size = video_size(image.shape[1], image.shape[0])
        return sent_picture(image, self.size)

    def make(self, index: int) -> np.ndarray:
        """In a thread: the idle picture (read-only), kept while under IDLE_CACHE_BYTES."""
        assets = self.warm.assets
        if self.size is None:
            self.size = video_size(*assets.size)
        image = assets.frame_readonly(index) if assets.size == self.size else self._decode(index)
        picture = self.picture(image)
        picture.setflags(write=False)
        with _idle_lock:  # `make` runs in executor threads
            if index not in self._pictures and _idle_total[0] + picture.nbytes <= IDLE_CACHE_BYTES:
                self._pictures[index] = picture
                self._bytes[0] += picture.nbytes
                _idle_total[0] += picture.nbytes
        return picture

    def _decode(self, index: int) -> np.ndarray:
        """The avatar's frame, decoded from its JPEG already shrunk by 2, 4 or 8 when the sent
        size is that much smaller (libjpeg skips the detail: 1.3 ms instead of 4 ms for
        576x768 by 2 here), else in full."""
        assets = self.warm.assets
        jpegs, full = getattr(assets, "jpeg_frames", None), getattr(assets, "size", None)
        if self.size is not None and jpegs is not None and full is not None:
            factor = min(full[0] // self.size[0], full[1] // self.size[1])
            flag = next((flag for f, flag in _REDUCED_DECODES if factor >= f), None)
            if flag is not None:
                return cv2.imdecode(np.frombuffer(jpegs[index], np.uint8), flag)
        return assets.frame_readonly(index)


def sent_picture(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A BGR frame as live sessions send it: at `size` (even), in I420 (BT.601, limited range,
    as swscale makes it; a (height * 3/2, width) array: Y, then U, then V), which costs a third
    of what the encoders' own conversion does."""
    return cv2.cvtColor(fit_frame(image, size), cv2.COLOR_BGR2YUV_I420)


def picture_size(picture: np.ndarray) -> tuple[int, int]:
    """(width, height) of an I420 picture."""
    return picture.shape[1], picture.shape[0] * 2 // 3


_REDUCED_DECODES = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))

_idle_pictures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Re-entrant: a collected IdlePictures gives its bytes back from wherever the collection runs.
_idle_lock = threading.RLock()
_idle_total = [0]  # bytes of all avatars' kept pictures


def _idle_release(counted: list) -> None:
    with _idle_lock:
        _idle_total[0] -= counted[0]
        counted[0] = 0


def idle_pictures(avatar) -> IdlePictures:
    """The avatar's IdlePictures (made on first use; gone with the avatar)."""
    with _idle_lock:
        pictures = _idle_pictures.get(avatar)
        if pictures is None or pictures.warm is not avatar.warm:
            pictures = _idle_pictures[avatar] = IdlePictures(avatar)
        return pictures
