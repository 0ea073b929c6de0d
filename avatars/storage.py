"""Avatar files through the Django storage API (filesystem by default, S3 when configured)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage


def storage_save(name: str, local_path: str | Path) -> str:
    """Store a local file under exactly `name` (replacing what was there), whole or not at
    all: a copy that fails half-way (the disk full) leaves no partial file behind."""
    if default_storage.exists(name):
        default_storage.delete(name)
    try:
        with open(local_path, "rb") as fh:
            saved = default_storage.save(name, File(fh, name=os.path.basename(name)))
    except BaseException:
        with contextlib.suppress(Exception):
            if default_storage.exists(name):
                default_storage.delete(name)
        raise
    return saved


def storage_delete_prefix(prefix: str) -> None:
    """Delete every file below a storage prefix (a folder on the filesystem)."""
    if not prefix:
        return
    prefix = prefix.rstrip("/")
    try:
        dirs, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        default_storage.delete(f"{prefix}/{name}")
    for sub in dirs:
        storage_delete_prefix(f"{prefix}/{sub}")
    if hasattr(default_storage, "path"):
        # The filesystem backend leaves empty folders behind.
        with contextlib.suppress(OSError, NotImplementedError):
            os.rmdir(default_storage.path(prefix))


def storage_delete(name: str) -> None:
    if name and default_storage.exists(name):
        default_storage.delete(name)


@contextlib.contextmanager
def storage_local_path(name: str) -> Iterator[str]:
    """A local path for a stored file: the file itself on disk, or a temporary copy from S3."""
    try:
        path = default_storage.path(name)
    except NotImplementedError:
        path = None
    if path is not None:
        yield path
        return
    suffix = os.path.splitext(name)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp, default_storage.open(name, "rb") as src:
        shutil.copyfileobj(src, tmp)
        tmp.flush()
        yield tmp.name
