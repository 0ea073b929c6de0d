"""Where the operator and admins put Ultralight's weights (path checks only, no torch).

LIPSYNC_WEIGHTS_DIR/ultralight/hubert/config.json              HuBERT config (optional;
                                                               hubert-large-ls960-ft assumed)
LIPSYNC_WEIGHTS_DIR/ultralight/hubert/pytorch_model.bin        the audio encoder the avatars
    (or model.safetensors)                                     were trained with
LIPSYNC_WEIGHTS_DIR/ultralight/avatars/<avatar id>.pth         one trained checkpoint per
                                                               avatar (see services)
"""

from __future__ import annotations

from pathlib import Path

HUBERT_FILES = ("pytorch_model.bin", "model.safetensors")


def weights_dir() -> Path:
    from django.conf import settings  # here, so the engines import without Django (benchmarks)

    return Path(settings.LIPSYNC_WEIGHTS_DIR) / "ultralight"


def hubert_dir() -> Path:
    return weights_dir() / "hubert"


def hubert_weights_path() -> Path | None:
    return next((hubert_dir() / n for n in HUBERT_FILES if (hubert_dir() / n).is_file()), None)


def avatar_checkpoint_path(avatar_id) -> Path:
    return weights_dir() / "avatars" / f"{avatar_id}.pth"


def weights_missing() -> list[str]:
    if hubert_weights_path() is None:
        return [f"{hubert_dir() / HUBERT_FILES[0]} (or {HUBERT_FILES[1]}), the HuBERT audio encoder"]
    return []
