"""An avatar's preprocessed assets, loaded for rendering.

Frames are held in memory JPEG-compressed (a 300 s avatar at full size would need
gigabytes raw) and decoded on use; the face track is held as arrays.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from django.conf import settings

from .asset_pipeline import FRAMES_FILE, META_FILE, TRACK_FILE
from .face_tracking import track_scaled
from .frame_size import fit_frame
from .video_io import iter_frames_at_fps, prefetched

JPEG_QUALITY = 97


def idle_index(k: int, n: int) -> int:
    """Frame shown at idle step k: forwards then backwards through the video (ping-pong)."""
    if n <= 1:
        return 0
    period = 2 * n - 2
    p = k % period
    return p if p < n else period - p


# Decoded frames are kept in memory up to LIPSYNC_FRAME_CACHE_MB, all avatars of a process
# together (shared by their sessions and renders): decoding a frame took 2–4 ms of every
# speaking frame's ~10 ms on a CPU worker. Beyond the budget, frames are decoded on use.
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
        image, shared = self._decoded_frame(index)
        return image.copy() if shared else image

    def frame_readonly(self, index: int) -> np.ndarray:
        """The decoded frame, not to be changed: the cached array itself when it is cached
        (the live idle pictures are made from it without a copy of their own)."""
        image, shared = self._decoded_frame(index)
        image.setflags(write=False)
        return image

    def _decoded_frame(self, index: int) -> tuple[np.ndarray, bool]:
        """(image, whether it is the cached array, which nobody may change)."""
        data = self.jpeg_frames[index]
        cached = self._decoded.get(index)
        if cached is not None and cached[0] is data:
            return cached[1], True
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        budget = settings.LIPSYNC_FRAME_CACHE_MB * 1024 * 1024
        with _decoded_total_lock:
            old = self._decoded.get(index)
            if old is not None and old[0] is data:  # another thread decoded it meanwhile
                return old[1], True
            grow = image.nbytes - (old[1].nbytes if old is not None else 0)
            if old is None and _decoded_total[0] + grow > budget:
                return image, False
            if not self._decoded:
                weakref.finalize(self, _decoded_release, self._decoded_bytes)
            image.setflags(write=False)
            self._decoded[index] = (data, image)
            self._decoded_bytes[0] += grow
            _decoded_total[0] += grow
        return image, True

    def idle_frame_index(self, k: int) -> int:
        return idle_index(k, self.frame_count)

    @classmethod
    def from_dir(cls, folder: str | Path, sized: Callable[[int, int], tuple[int, int]] | None = None) -> AvatarAssets:
        """Load the assets of `folder`. `sized`: (width, height) -> the size to load the frames
        at (the live sessions' sent size, for an engine that renders at any size); the face
        track is scaled with them."""
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / TRACK_FILE) as data:
            track = {key: data[key] for key in data.files}
        full = (int(meta["width"]), int(meta["height"]))
        size = sized(*full) if sized is not None else full
        jpegs = []
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        for image in prefetched(iter_frames_at_fps(str(folder / FRAMES_FILE))):
            if len(jpegs) >= meta["frame_count"]:
                break
            ok, buf = cv2.imencode(".jpg", fit_frame(image, size), params)
            jpegs.append(buf.tobytes())
        if len(jpegs) != meta["frame_count"]:
            raise ValueError(f"The avatar video has {len(jpegs)} frames; its metadata says {meta['frame_count']}.")
        if size != full:
            track = track_scaled(track, size[0] / full[0], size[1] / full[1])
            meta = {**meta, "width": size[0], "height": size[1], "scaled_from": list(full)}
        return cls(meta=meta, track=track, jpeg_frames=jpegs)

    @classmethod
    def from_storage(cls, assets_path: str, sized: Callable[[int, int], tuple[int, int]] | None = None) -> AvatarAssets:
        """Load from the Django storage (copies to a temporary folder when not on disk)."""
        import tempfile

        from django.core.files.storage import default_storage

        from avatars.storage import storage_local_path

        try:
            return cls.from_dir(default_storage.path(assets_path), sized)
        except NotImplementedError:
            pass
        with tempfile.TemporaryDirectory(prefix="assets-") as tmp:
            for name in (META_FILE, TRACK_FILE, FRAMES_FILE):
                with storage_local_path(f"{assets_path}/{name}") as local:
                    Path(tmp, name).write_bytes(Path(local).read_bytes())
            return cls.from_dir(tmp, sized)
