"""The lip-sync engine interface shared by every engine.

An engine prepares an avatar once (assets and model in memory, shared by all sessions of
the worker), then renders batches of 25 fps frames for stretches of 16 kHz audio, and
releases the avatar when it stops.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640


@dataclass(frozen=True)
class Timing:
    """A phoneme or word the TTS engine placed in time (milliseconds from segment start)."""

    kind: str  # "phoneme" or "word"
    text: str
    start_ms: float
    end_ms: float


@dataclass
class AudioSegment:
    """Speech to lip-sync: mono float32 samples at 16 kHz, with timings when known."""

    samples: np.ndarray
    timings: list[Timing] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return int(np.ceil(len(self.samples) / SAMPLES_PER_FRAME))

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass
class RenderedFrame:
    image: np.ndarray  # full-size BGR frame
    index: int  # the avatar frame it was made from
    mouth_open: float  # intended opening, 0..1 (for quality checks)


class LipsyncEngine(ABC):
    name: str = ""
    display_name: str = ""
    needs_weights: bool = False
    # Renders any frame size it is given (its assets' size): live sessions then load the
    # avatar at the size they send, rather than rendering full frames and shrinking each.
    renders_at_any_size: bool = False

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def device(self) -> str:
        return "cpu"

    @abstractmethod
    def prepare(self, assets) -> object:
        """Build what rendering this avatar needs (once per worker); returns a handle."""

    @abstractmethod
    def render(self, prepared, audio: AudioSegment, first_frame: int) -> Iterator[RenderedFrame]:
        """The 25 fps frames for `audio` (one per 640 samples), in order, starting at the
        avatar's idle-loop position `first_frame`. A generator, so frames can go out as
        they are made and a caller can stop early (interrupt)."""

    def release(self, prepared) -> None:  # noqa: B027 - optional: engines with nothing to free keep it
        """Free what `prepare` built."""
