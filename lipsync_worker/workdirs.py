"""Temporary folders of the lipsync jobs, under FILE_UPLOAD_TEMP_DIR."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

from django.conf import settings


def job_workdir(prefix: str) -> str:
    """A new temporary folder for a job's files, named after the job (`prefix` names the job
    and its task id). A killed earlier attempt of the same job left its folder behind under
    the same prefix: it goes first, as the job's partial files in storage do."""
    for stale in glob.glob(os.path.join(glob.escape(settings.FILE_UPLOAD_TEMP_DIR), glob.escape(prefix) + "*")):
        shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=prefix, dir=settings.FILE_UPLOAD_TEMP_DIR)
