"""PocketSphinx (BSD-2-Clause): offline streaming ASR on the CPU, with the US English
acoustic model, dictionary and language model that ship inside its wheel."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from contracts.conversation import ASR_SAMPLE_RATE
from contracts.errors import EngineUnavailable

from .base import ASREngine, Transcriber, as_float32, float_to_int16, max_samples

# A partial hypothesis is looked at after this much new audio (hyp() walks the lattice).
PARTIAL_EVERY_SAMPLES = ASR_SAMPLE_RATE // 4
# Idle decoders kept for the next utterances (~30 MB each); more are made while busy.
POOL_SIZE = 4


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("pocketsphinx")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model" / "en-us"


class PocketSphinxEngine(ASREngine):
    name = "pocketsphinx"

    def __init__(self):
        # A Decoder is not thread-safe and takes ~0.3 s to load: each utterance borrows one.
        self._idle: list = []
        self._initial_cmn = ""
        self._lock = threading.Lock()

    def availability(self) -> tuple[bool, str]:
        model = _model_dir()
        if model is None:
            return False, "The pocketsphinx package is not installed (requirements.txt)."
        if not (model / "en-us").is_dir():
            return False, f"The pocketsphinx US English model is missing ({model})."
        return True, ""

    def model(self) -> str:
        return "en-us (in the pocketsphinx wheel)"

    def transcriber(self, language: str = "en") -> Transcriber:
        self._require_available()
        if language.split("-")[0].lower() != "en":
            raise EngineUnavailable(
                f"{self.entry.display_name} cannot transcribe '{language}': only US English model ships.",
                field="language",
            )
        return PocketSphinxTranscriber(self)

    def warm_up(self) -> None:
        """Load one decoder now, so the first utterance does not wait for it."""
        self._release(self._borrow())

    def _borrow(self):
        """An idle decoder, or a new one; either starts from the model's cepstral mean (live
        CMN adapts to each utterance: one student's voice must not colour the next's)."""
        with self._lock:
            decoder = self._idle.pop() if self._idle else None
        if decoder is None:
            import pocketsphinx

            decoder = pocketsphinx.Decoder(samprate=ASR_SAMPLE_RATE, loglevel="ERROR")
            self._initial_cmn = decoder.get_cmn()
        decoder.set_cmn(self._initial_cmn)
        return decoder

    def _release(self, decoder) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(decoder)


class PocketSphinxTranscriber(Transcriber):
    """Decodes while audio arrives; `finish()` only closes the utterance."""

    def __init__(self, engine: PocketSphinxEngine):
        self._engine = engine
        self._decoder = engine._borrow()
        self._decoder.start_utt()
        self._samples = 0
        self._limit = max_samples()
        self._since_partial = 0
        self._partial = ""

    def accept(self, pcm: np.ndarray) -> str | None:
        if self._decoder is None:
            raise RuntimeError("This utterance is finished.")
        pcm = as_float32(pcm)[: max(0, self._limit - self._samples)]
        if not len(pcm):
            return None
        self._decoder.process_raw(float_to_int16(pcm).tobytes())
        self._samples += len(pcm)
        self._since_partial += len(pcm)
        if self._since_partial < PARTIAL_EVERY_SAMPLES:
            return None
        self._since_partial = 0
        hyp = self._decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if text == self._partial:
            return None
        self._partial = text
        return text

    def finish(self) -> str:
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            raise RuntimeError("This utterance is finished.")
        # Not given back when end_utt() fails: its state is unknown.
        decoder.end_utt()
        hyp = decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        self._engine._release(decoder)
        return text
