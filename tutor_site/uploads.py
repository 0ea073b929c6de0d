"""Uploads land in temporary files under FILE_UPLOAD_TEMP_DIR (PyAV probes them by path)."""

from __future__ import annotations

import contextlib

from django.core.files import uploadhandler


class TemporaryFileUploadHandler(uploadhandler.TemporaryFileUploadHandler):
    """Django's, but a temporary file that cannot be written (the disk full) is removed at
    once rather than when the garbage collector finds it, holding the space meanwhile."""

    def receive_data_chunk(self, raw_data, start):
        try:
            return super().receive_data_chunk(raw_data, start)
        except OSError:
            with contextlib.suppress(OSError):
                self.upload_interrupted()
            raise
