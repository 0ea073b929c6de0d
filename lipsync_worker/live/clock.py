"""The clock of a live session: one task on the runtime's event loop, a tick every 40 ms.

Each tick takes the next rendered speech tick from the FrameQueue without waiting
(`get_nowait`) and shows it, its frame with its 640 audio samples, through the peer; when
there is none it shows the avatar's idle loop with silence. It says when an utterance starts
to be seen (speaking_started), its words as they come (word) and when its last tick has been
shown (speaking_ended). It never blocks: a renderer that falls behind only makes it idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .frames import FrameQueue, SpeechEnd, SpeechTick, Utterance, idle_pictures
from .tracks import SILENT_TICK

logger = logging.getLogger(__name__)

TICK = 0.04
# When the process was starved for longer than this, the clock jumps ahead instead of
# bursting the missed frames out (the receiver sees a gap, not a fast-forward).
MAX_LATE = 0.25


class Clock:
    """Owns the tick counter, the idle-loop position, the utterance being shown, the stats,
    and the consuming end of the FrameQueue. All of it lives on the event loop."""

    def __init__(
        self,
        avatar,
        frames: FrameQueue,
        *,
        show: Callable,
        report: Callable[[dict], None],
        on_failure: Callable[[], None],
        name: str = "",
    ):
        self.avatar = avatar  # runtime.LiveAvatar
        self.idle = idle_pictures(avatar)
        self.frames = frames
        self._show = show  # (picture, pcm, tick) -> None: the peer's tracks (frames.sent_picture)
        self._report = report  # (event) -> None
        self._on_failure = on_failure
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.pos = 0  # step of the idle loop shown next
        self.tick = 0
        self.playing: Utterance | None = None
        self.stats = {"ticks": 0, "skipped": 0, "speech_ticks": 0}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name=f"live-clock-{self.name}")

    def stop(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def speech_start_step(self) -> int:
        """The idle-loop position at which speech queued now would be shown."""
        return self.pos + self.frames.qsize() + 1

    def drop_speech(self) -> Utterance | None:
        """Interrupt: stop showing the current utterance (its ticks still queued are skipped);
        returns it, or None when nothing was being shown."""
        playing, self.playing = self.playing, None
        if playing is not None:
            playing.cancel()
        return playing

    def _next_item(self) -> SpeechTick | None:
        while (item := self.frames.get_nowait()) is not None:
            if item.utterance.cancelled:
                continue
            if isinstance(item, SpeechEnd):
                ended = {"type": "speaking_ended", "utterance": item.utterance.id, "interrupted": False}
                if self.playing is item.utterance:
                    self.playing = None
                    self._report(ended)
                else:  # its speech failed before a tick of it was shown: it is over all the same
                    self._report({**ended, "played": False})
                continue
            if self.playing is not item.utterance:
                self.playing = item.utterance
                latency = round((time.monotonic() - item.utterance.said_at) * 1000)
                self._report(
                    {
                        "type": "speaking_started",
                        "utterance": item.utterance.id,
                        "text": item.utterance.text,
                        "latency_ms": latency,
                    }
                )
            for word in item.words:
                self._report({"type": "word", "utterance": item.utterance.id, **word})
            self.pos = item.step + 1
            return item
        return None

    async def _run(self) -> None:
        start = self.loop.time()
        try:
            while True:
                due = start + self.tick * TICK
                now = self.loop.time()
                if now < due:
                    await asyncio.sleep(due - now)
                elif now - due > MAX_LATE:
                    skipped = int((now - due) / TICK)
                    self.tick += skipped
                    self.stats["skipped"] += skipped
                item = self._next_item()
                if item is not None:
                    picture, pcm = item.picture, item.pcm
                    self.stats["speech_ticks"] += 1
                else:
                    index = self.avatar.warm.assets.idle_frame_index(self.pos)
                    self.pos += 1
                    picture = self.idle.get(index)
                    if picture is None:
                        picture = await self.loop.run_in_executor(None, self.idle.make, index)
                    pcm = SILENT_TICK
                self._show(picture, pcm, self.tick)
                self.tick += 1
                self.stats["ticks"] += 1
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("Live clock %s stopped", self.name)
            self._on_failure()
