"""Lip-sync engines, registered by name.

Each engine says whether it can run on this machine and, if not, exactly why (missing
weights, missing runtime). Nothing here downloads anything.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from contracts.engines import DEFAULT_LIPSYNC_ENGINE, LIPSYNC_ENGINES, LipsyncEngineEntry
from contracts.errors import EngineUnavailable

from .base import LipsyncEngine


@dataclass(frozen=True)
class Implementation:
    engine_class: str  # "module:Class"
    # "module:function" listing the weight files that are missing (path checks only, no
    # torch import); replaces the any-one-of `weights` check for multi-file engines.
    weights_check: str = ""


# Every engine of the catalogue (`contracts.engines`) and where this worker finds it.
IMPLEMENTATIONS: dict[str, Implementation] = {
    "MuseTalk": Implementation(
        "lipsync_worker.engines.musetalk.engine:MuseTalkEngine",
        "lipsync_worker.engines.musetalk.weights:weights_missing",
    ),
    "wav2lip": Implementation(
        "lipsync_worker.engines.wav2lip.engine:Wav2LipEngine", "lipsync_worker.engines.wav2lip.weights:weights_missing"
    ),
    "ultralight": Implementation(
        "lipsync_worker.engines.ultralight.engine:UltralightEngine",
        "lipsync_worker.engines.ultralight.weights:weights_missing",
    ),
    "viseme": Implementation("lipsync_worker.engines.viseme:VisemeEngine"),
}


@dataclass(frozen=True)
class LipsyncEngineInfo:
    entry: LipsyncEngineEntry
    implementation: Implementation | None

    def __getattr__(self, name):
        # The catalogue's facts (name, display_name, weights, ...) read through.
        if name in ("entry", "implementation"):
            raise AttributeError(name)
        return getattr(self.entry, name)

    def device(self) -> str:
        if self.runtime != "torch" or importlib.util.find_spec("torch") is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def weights_dir(self) -> Path:
        # Django is imported here, not above: the network modules under this package must
        # import with torch alone (conversion scripts, notebooks, the bench).
        from django.conf import settings

        return Path(settings.LIPSYNC_WEIGHTS_DIR) / self.name

    def availability(self) -> tuple[bool, str]:
        if self.implementation is None:
            return False, "This engine is not part of this version yet."
        if self.runtime and importlib.util.find_spec(self.runtime) is None:
            return False, f"The Python package '{self.runtime}' is not installed on this worker."
        if self.implementation.weights_check:
            module, _, function = self.implementation.weights_check.partition(":")
            missing = getattr(importlib.import_module(module), function)()
            if missing:
                return False, "Weights not found: " + "; ".join(missing) + "."
            return True, ""
        if self.needs_weights and not self.per_avatar_weights:
            folder = self.weights_dir()
            if not any((folder / name).is_file() for name in self.weights):
                return False, f"Weights not found: place {' or '.join(self.weights)} in {folder}."
        return True, ""


# Catalogue order: the default avatar model is the first usable one.
ENGINES: dict[str, LipsyncEngineInfo] = {
    entry.name: LipsyncEngineInfo(entry, IMPLEMENTATIONS.get(entry.name)) for entry in LIPSYNC_ENGINES
}


def engine_info(name: str) -> LipsyncEngineInfo:
    return ENGINES[name]


def engine_availability(name: str) -> tuple[bool, str]:
    return ENGINES[name].availability()


def engine_default() -> str:
    for name, info in ENGINES.items():
        if info.availability()[0] and not info.per_avatar_weights:
            return name
    return DEFAULT_LIPSYNC_ENGINE


def engine_list() -> list[dict]:
    rows = []
    for info in ENGINES.values():
        available, reason = info.availability()
        rows.append(
            {
                "id": info.name,
                "display_name": info.display_name,
                "available": available,
                "reason": reason,
                "device": info.device() if available else "",
                "needs_weights": info.needs_weights,
                "licence": info.licence,
            }
        )
    return rows


@functools.cache
def engine_class(name: str) -> type[LipsyncEngine]:
    """The engine's class (its traits, e.g. `renders_at_any_size`), without checking that it can run."""
    info = ENGINES.get(name)
    if info is None:
        raise EngineUnavailable(f"Unknown lip-sync engine '{name}'; known: {', '.join(ENGINES)}.")
    module, _, cls = info.implementation.engine_class.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_engine(name: str) -> LipsyncEngine:
    """The engine instance of this process (engines keep per-avatar state, not per-call)."""
    engine = engine_class(name)
    available, reason = ENGINES[name].availability()
    if not available:
        raise EngineUnavailable(f"The lip-sync engine '{name}' cannot run here: {reason}")
    return engine()
