"""An avatar's preprocessed assets, loaded for rendering.

Frames are held in memory JPEG-compressed (a 300 s avatar at full size would need
gigabytes raw) and decoded on use; the face track is held as arrays.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .asset_pipeline import FRAMES_FILE, META_FILE, TRACK_FILE
from .video_io import iter_frames_at_fps, prefetched

JPEG_QUALITY = 97


def idle_index(k: int, n: int) -> int:
    """Frame shown at idle step k: forwards then backwards through the video (ping-pong)."""
    if n <= 1:
        return 0
    period = 2 * n - 2
    p = k % period
    return p if p < n else period - p


# Decoded frames kept in memory, all avatars of a process together (shared by their
# sessions and renders): decoding a frame took 2–4 ms of every speaking frame's ~10 ms on a
# CPU worker. Beyond the budget, frames are decoded on use.
DECODED_CACHE_BYTES = 256 * 1024 * 1024
_decoded_total = [0]  # bytes cached by every AvatarAssets of this process
_decoded_total_lock = threading.Lock()


def _decoded_release(counted: list[int]) -> None:
    """An AvatarAssets went away: its cached frames no longer count."""
    with _decoded_total_lock:
        _decoded_total[0] -= counted[0]
        counted[0] = 0


@dataclass
class AvatarAssets:
    meta: dict
    track: dict[str, np.ndarray]
    jpeg_frames: list[bytes]
    # index -> (the JPEG it was decoded from, the image): an engine may replace `jpeg_frames`
    # (viseme's idle loop with closed mouths), so an entry counts only for the same JPEG.
    _decoded: dict = field(default_factory=dict, repr=False)
    _decoded_bytes: list = field(default_factory=lambda: [0], repr=False)  # released when this goes

    @property
    def frame_count(self) -> int:
        return len(self.jpeg_frames)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.meta["width"]), int(self.meta["height"])

    def frame(self, index: int) -> np.ndarray:
        """The decoded frame, the caller's own copy (engines paint on it)."""
        data = self.jpeg_frames[index]
        cached = self._decoded.get(index)
        if cached is not None and cached[0] is data:
            return cached[1].copy()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        with _decoded_total_lock:
            old = self._decoded.get(index)
            grow = image.nbytes - (old[1].nbytes if old is not None else 0)
            if old is not None or _decoded_total[0] + grow <= DECODED_CACHE_BYTES:
                if not self._decoded:
                    weakref.finalize(self, _decoded_release, self._decoded_bytes)
                self._decoded[index] = (data, image)
                self._decoded_bytes[0] += grow
                _decoded_total[0] += grow
                image = image.copy()
        return image

    def idle_frame_index(self, k: int) -> int:
        return idle_index(k, self.frame_count)

    @classmethod
    def from_dir(cls, folder: str | Path) -> AvatarAssets:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / TRACK_FILE) as data:
            track = {key: data[key] for key in data.files}
        jpegs = []
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        for image in prefetched(iter_frames_at_fps(str(folder / FRAMES_FILE))):
            if len(jpegs) >= meta["frame_count"]:
                break
            ok, buf = cv2.imencode(".jpg", image, params)
            jpegs.append(buf.tobytes())
        if len(jpegs) != meta["frame_count"]:
            raise ValueError(f"The avatar video has {len(jpegs)} frames; its metadata says {meta['frame_count']}.")
        return cls(meta=meta, track=track, jpeg_frames=jpegs)

    @classmethod
    def from_storage(cls, assets_path: str) -> AvatarAssets:
        """Load from the Django storage (copies to a temporary folder when not on disk)."""
        import tempfile

        from django.core.files.storage import default_storage

        from avatars.storage import storage_local_path

        try:
            return cls.from_dir(default_storage.path(assets_path))
        except NotImplementedError:
            pass
        with tempfile.TemporaryDirectory(prefix="assets-") as tmp:
            for name in (META_FILE, TRACK_FILE, FRAMES_FILE):
                with storage_local_path(f"{assets_path}/{name}") as local:
                    Path(tmp, name).write_bytes(Path(local).read_bytes())
            return cls.from_dir(tmp)
