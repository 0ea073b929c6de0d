"""Installing an avatar's Ultralight checkpoint (the admin trains it elsewhere and uploads
the file): validated by a strict load before it replaces anything."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from . import weights
from .network import build_ultralight, load_checkpoint


def ultralight_checkpoint_install(*, avatar_id: int, source: str | Path | BinaryIO) -> dict:
    """Check `source` (a path or an open file) and store it as the avatar's checkpoint.
    Raises CheckpointError with the exact mismatch when it is not an Ultralight model."""
    target = weights.avatar_checkpoint_path(avatar_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".pth", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, (str, Path)):
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                shutil.copyfileobj(source, out)
        model = build_ultralight(tmp)  # raises on anything that would not load strictly
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(target), "mode": model.mode, "keys": len(load_checkpoint(target))}


def ultralight_checkpoint_delete(*, avatar_id: int) -> bool:
    path = weights.avatar_checkpoint_path(avatar_id)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed
