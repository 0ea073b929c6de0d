"""The engine catalogues: every lip-sync, TTS, ASR engine and responder the platform knows,
as plain data.

This is the one registry of engine names. The web reads it for model field choices and
input validation (adding an engine here needs no migration: the fields take their choices
from these functions), and each worker maps every name to its implementation
(`lipsync_worker.engines`, `tts_worker.engines`; a test checks both sides match). Whether
an engine can run is only known where it runs: workers publish that (`contracts.catalogue`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LipsyncEngineEntry:
    name: str
    display_name: str
    licence: str
    needs_weights: bool
    # Files expected under LIPSYNC_WEIGHTS_DIR/<name>/, any one of them suffices.
    weights: tuple[str, ...] = ()
    runtime: str | None = None  # Python package the engine needs on the worker
    per_avatar_weights: bool = False


@dataclass(frozen=True)
class TTSEngineEntry:
    name: str
    display_name: str
    licence: str
    supports_clone: bool = False
    # True when the engine runs in the tts worker only because its licence is GPL.
    gpl: bool = False


# Order matters: the default lip-sync engine is the first one a worker can run.
LIPSYNC_ENGINES: tuple[LipsyncEngineEntry, ...] = (
    LipsyncEngineEntry(
        "MuseTalk",
        "MuseTalk 1.5",
        "MIT code; weights under their own licences (sd-vae: CreativeML OpenRAIL-M)",
        needs_weights=True,
        weights=("unet.pth", "pytorch_model.bin"),
        runtime="torch",
    ),
    LipsyncEngineEntry(
        "wav2lip",
        "Wav2Lip",
        "Released weights: non-commercial research use only",
        needs_weights=True,
        weights=("wav2lip.pth", "wav2lip_gan.pth"),
        runtime="torch",
    ),
    LipsyncEngineEntry(
        "ultralight",
        "Ultralight Digital Human",
        "Apache-2.0 code; per-avatar weights trained by the operator",
        needs_weights=True,
        runtime="torch",
        per_avatar_weights=True,
    ),
    LipsyncEngineEntry("viseme", "Viseme (CPU, no weights)", "Ours (same as this project)", needs_weights=False),
)
DEFAULT_LIPSYNC_ENGINE = "viseme"

TTS_ENGINES: tuple[TTSEngineEntry, ...] = (
    TTSEngineEntry("piper", "Piper", "GPL-3.0 (piper-tts); voice en_US-joe-medium: its model card", gpl=True),
    TTSEngineEntry("espeak-ng", "eSpeak NG", "GPL-3.0", gpl=True),
    TTSEngineEntry("edge-tts", "Edge TTS (online)", "edge-tts client: LGPL-3.0; Microsoft's service terms"),
    TTSEngineEntry("cosyvoice", "CosyVoice", "Apache-2.0 (the operator's server)", supports_clone=True),
    TTSEngineEntry("sovits", "GPT-SoVITS", "MIT (the operator's server)", supports_clone=True),
    TTSEngineEntry("tacotron", "Tacotron2", "BSD-3-Clause (the operator's server)"),
)


@dataclass(frozen=True)
class ASREngineEntry:
    name: str
    display_name: str
    licence: str
    # True when it runs inside the worker on weights on disk; False for a server of the operator.
    offline: bool = True


@dataclass(frozen=True)
class ResponderEntry:
    """What answers a student: a retrieval over the avatar's knowledge base, or an LLM."""

    name: str
    display_name: str
    licence: str


# ASR and responders run in the worker hosting the live sessions (the `live` queue).
ASR_ENGINES: tuple[ASREngineEntry, ...] = (
    ASREngineEntry(
        "pocketsphinx", "PocketSphinx (CPU, offline)", "BSD-2-Clause; its US English model ships in the wheel"
    ),
    ASREngineEntry(
        "faster-whisper",
        "faster-whisper (the operator's CTranslate2 model)",
        "MIT code; Whisper weights MIT (OpenAI), or the supplied model's licence",
    ),
    ASREngineEntry(
        "openai", "OpenAI-compatible transcription server (ASR_URL)", "The operator's server's terms", offline=False
    ),
)
DEFAULT_ASR_ENGINE = "pocketsphinx"

RESPONDERS: tuple[ResponderEntry, ...] = (
    ResponderEntry("knowledge", "Knowledge base (offline retrieval)", "Ours (same as this project)"),
    ResponderEntry(
        "openai", "OpenAI-compatible chat server (LLM_BASE_URL)", "The operator's server's and model's terms"
    ),
)
DEFAULT_RESPONDER = "knowledge"


def lipsync_engine(name: str) -> LipsyncEngineEntry | None:
    return next((e for e in LIPSYNC_ENGINES if e.name == name), None)


def tts_engine(name: str) -> TTSEngineEntry | None:
    return next((e for e in TTS_ENGINES if e.name == name), None)


def lipsync_engine_names() -> list[str]:
    return [e.name for e in LIPSYNC_ENGINES]


def tts_engine_names() -> list[str]:
    return [e.name for e in TTS_ENGINES]


def lipsync_engine_choices() -> list[tuple[str, str]]:
    """Choices of `Avatar.avatar_model` (a callable, so the migration never changes)."""
    return [(e.name, e.display_name) for e in LIPSYNC_ENGINES]


def tts_engine_choices() -> list[tuple[str, str]]:
    """Choices of `Avatar.tts_model`."""
    return [(e.name, e.display_name) for e in TTS_ENGINES]


def clone_engine_names() -> list[str]:
    return [e.name for e in TTS_ENGINES if e.supports_clone]


def asr_engine(name: str) -> ASREngineEntry | None:
    return next((e for e in ASR_ENGINES if e.name == name), None)


def asr_engine_names() -> list[str]:
    return [e.name for e in ASR_ENGINES]


def asr_engine_choices() -> list[tuple[str, str]]:
    """Choices of `Avatar.asr_model`."""
    return [(e.name, e.display_name) for e in ASR_ENGINES]


def responder(name: str) -> ResponderEntry | None:
    return next((e for e in RESPONDERS if e.name == name), None)


def responder_names() -> list[str]:
    return [e.name for e in RESPONDERS]


def responder_choices() -> list[tuple[str, str]]:
    """Choices of `Avatar.llm_model` (the responder)."""
    return [(e.name, e.display_name) for e in RESPONDERS]
