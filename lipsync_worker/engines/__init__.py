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

from django.conf import settings

from tutor_site.exceptions import EngineUnavailable

from .base import LipsyncEngine


@dataclass(frozen=True)
class LipsyncEngineInfo:
    name: str
    display_name: str
    needs_weights: bool
    weights: tuple[str, ...] = ()  # files expected under LIPSYNC_WEIGHTS_DIR/<name>/, any one suffices
    runtime: str | None = None  # Python module the engine needs
    per_avatar_weights: bool = False
    licence: str = ""
    engine_class: str = ""  # "module:Class" of the implementation
    # "module:function" listing the weight files that are missing (path checks only, no
    # torch import); replaces the any-one-of `weights` check for multi-file engines.
    weights_check: str = ""

    def device(self) -> str:
        if self.runtime != "torch" or importlib.util.find_spec("torch") is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def weights_dir(self) -> Path:
        return Path(settings.LIPSYNC_WEIGHTS_DIR) / self.name

    def availability(self) -> tuple[bool, str]:
        if not self.engine_class:
            return False, "This engine is not part of this version yet."
        if self.runtime and importlib.util.find_spec(self.runtime) is None:
            return False, f"The Python package '{self.runtime}' is not installed on this worker."
        if self.weights_check:
            module, _, function = self.weights_check.partition(":")
            missing = getattr(importlib.import_module(module), function)()
            if missing:
                return False, "Weights not found: " + "; ".join(missing) + "."
            return True, ""
        if self.needs_weights and not self.per_avatar_weights:
            folder = self.weights_dir()
            if not any((folder / name).is_file() for name in self.weights):
                return False, f"Weights not found: place {' or '.join(self.weights)} in {folder}."
        return True, ""


# Order matters: the default avatar model is the first usable one.
ENGINES: dict[str, LipsyncEngineInfo] = {
    info.name: info
    for info in (
        LipsyncEngineInfo(
            "MuseTalk", "MuseTalk 1.5", needs_weights=True, weights=("unet.pth", "pytorch_model.bin"),
            runtime="torch", licence="MIT code; weights under their own licences (sd-vae: CreativeML OpenRAIL-M)",
            engine_class="lipsync_worker.engines.musetalk.engine:MuseTalkEngine",
            weights_check="lipsync_worker.engines.musetalk.weights:weights_missing",
        ),
        LipsyncEngineInfo(
            "wav2lip", "Wav2Lip", needs_weights=True, weights=("wav2lip.pth", "wav2lip_gan.pth"), runtime="torch",
            licence="Released weights: non-commercial research use only",
            engine_class="lipsync_worker.engines.wav2lip.engine:Wav2LipEngine",
            weights_check="lipsync_worker.engines.wav2lip.weights:weights_missing",
        ),
        LipsyncEngineInfo(
            "ultralight", "Ultralight Digital Human", needs_weights=True, runtime="torch",
            per_avatar_weights=True, licence="Apache-2.0 code; per-avatar weights trained by the operator",
            engine_class="lipsync_worker.engines.ultralight.engine:UltralightEngine",
            weights_check="lipsync_worker.engines.ultralight.weights:weights_missing",
        ),
        LipsyncEngineInfo(
            "viseme", "Viseme (CPU)", needs_weights=False, licence="Ours (same as this project)",
            engine_class="lipsync_worker.engines.viseme:VisemeEngine",
        ),
    )
}


def engine_info(name: str) -> LipsyncEngineInfo:
    return ENGINES[name]


def engine_availability(name: str) -> tuple[bool, str]:
    return ENGINES[name].availability()


def engine_default() -> str:
    for name, info in ENGINES.items():
        if info.availability()[0] and not info.per_avatar_weights:
            return name
    return "viseme"


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
def get_engine(name: str) -> LipsyncEngine:
    """The engine instance of this process (engines keep per-avatar state, not per-call)."""
    info = ENGINES.get(name)
    if info is None:
        raise EngineUnavailable(f"Unknown lip-sync engine '{name}'; known: {', '.join(ENGINES)}.")
    available, reason = info.availability()
    if not available:
        raise EngineUnavailable(f"The lip-sync engine '{name}' cannot run here: {reason}")
    module, _, cls = info.engine_class.partition(":")
    return getattr(importlib.import_module(module), cls)()
