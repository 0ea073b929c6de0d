"""Where the operator puts Wav2Lip's weights (path checks only: no torch import, so the
registry can answer from the web process).

    LIPSYNC_WEIGHTS_DIR/wav2lip/wav2lip.pth       the released generator (or wav2lip_gan.pth)
"""

from __future__ import annotations

from pathlib import Path

FILES = ("wav2lip.pth", "wav2lip_gan.pth")


def weights_dir() -> Path:
    from django.conf import settings  # here, so the engines import without Django (benchmarks)

    return Path(settings.LIPSYNC_WEIGHTS_DIR) / "wav2lip"


def checkpoint_path() -> Path | None:
    return next((weights_dir() / name for name in FILES if (weights_dir() / name).is_file()), None)


def weights_missing() -> list[str]:
    if checkpoint_path() is None:
        return [f"{weights_dir() / FILES[0]} (or {FILES[1]} in the same folder)"]
    return []
