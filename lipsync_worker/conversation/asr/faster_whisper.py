"""faster-whisper (MIT): Whisper on CTranslate2, with a model the operator converted and
put under ASR_MODELS_DIR/<name>/ (model.bin, config.json, vocabulary, tokenizer.json).

Nothing is downloaded: the model is loaded from that directory only, and a directory
without tokenizer.json is refused (faster-whisper would fetch one from the Hugging Face hub).
No partial hypotheses: the utterance is transcribed when it ends.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from contracts.errors import EngineUnavailable

from .base import ASREngine, BufferingTranscriber, Transcriber, package_installed

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


def model_dir() -> Path | None:
    """ASR_MODELS_DIR/ASR_WHISPER_MODEL, or the first directory there with a model.bin."""
    root = Path(settings.ASR_MODELS_DIR)
    if settings.ASR_WHISPER_MODEL:
        return root / settings.ASR_WHISPER_MODEL
    if not root.is_dir():
        return None
    return next((d for d in sorted(root.iterdir()) if (d / "model.bin").is_file()), None)


class FasterWhisperEngine(ASREngine):
    name = "faster-whisper"

    def __init__(self):
        self._loaded: tuple[Path, object] | None = None  # (directory, WhisperModel)
        self._lock = threading.Lock()

    def availability(self) -> tuple[bool, str]:
        if not package_installed("faster_whisper"):
            return False, "The faster-whisper package is not installed (requirements.txt)."
        path = model_dir()
        if path is None:
            return False, (
                "No Whisper model: put a CTranslate2-converted model in a directory under "
                "ASR_MODELS_DIR or set ASR_WHISPER_MODEL."
            )
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            # The folder's name only: the listing is read by every admin (no server paths).
            lacks = ", ".join(missing)
            return False, f"The Whisper model '{path.name}' lacks {lacks} (ASR_MODELS_DIR, ASR_WHISPER_MODEL)."
        return True, ""

    def model(self) -> str:
        path = model_dir()
        return path.name if path is not None else ""

    def transcriber(self, language: str = "en") -> Transcriber:
        self._require_available()
        model = self._model()
        language = language.split("-")[0].lower()
        if language not in model.supported_languages:
            raise EngineUnavailable(
                f"The Whisper model '{self.model()}' cannot transcribe '{language}' "
                f"(it knows {', '.join(model.supported_languages[:12])}…).",
                field="language",
            )
        return FasterWhisperTranscriber(model, language)

    def warm_up(self) -> None:
        """Load the model now, so the first utterance does not wait for it."""
        self._require_available()
        self._model()

    def _model(self):
        path = model_dir()
        with self._lock:
            if self._loaded is None or self._loaded[0] != path:
                from faster_whisper import WhisperModel

                # "auto": the GPU when CTranslate2 sees one; the model's own precision.
                model = WhisperModel(str(path), device="auto", compute_type="default", local_files_only=True)
                self._loaded = (path, model)
            return self._loaded[1]


class FasterWhisperTranscriber(BufferingTranscriber):
    def __init__(self, model, language: str):
        super().__init__()
        self._model = model
        self._language = language

    def finish(self) -> str:
        audio = self.audio()
        if not len(audio):
            return ""
        # One greedy pass without timestamps or Silero filtering (the VAD already cut the
        # utterance): a live answer waits on it.
        segments, _info = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()
