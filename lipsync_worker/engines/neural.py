"""What the three neural engines (wav2lip, MuseTalk, ultralight) share: checkpoint files,
strict loading with a readable mismatch, the per-avatar cache, the batched render loop,
pasting faces back, and batching across the concurrent sessions of one worker.

Imports torch, so only the engines import this module (the registry and the web process
never do).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from .base import AudioSegment, LipsyncEngine, RenderedFrame
from .viseme.visemes import curves_from_audio


class CheckpointError(Exception):
    """A weights file that cannot be used; the message names the file and what is wrong."""


# --- devices ------------------------------------------------------------------------------


def torch_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_dtype(device: torch.device) -> torch.dtype:
    # fp16 halves memory traffic on GPUs (the networks are bandwidth bound at these
    # sizes); CPUs have no fast fp16 convolutions, so they stay in fp32.
    return torch.float16 if device.type == "cuda" else torch.float32


# --- checkpoint files ---------------------------------------------------------------------


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())


def load_tensor_file(path: str | Path) -> object:
    """Whatever the file holds (a state_dict, a training checkpoint dict, TorchScript's
    state_dict), without running pickled code: admins upload some of these files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if _is_torchscript(path):
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means the same to the operator
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint of plain tensors ({type(exc).__name__}: {str(exc)[:200]})."
        ) from exc


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: object, path: str | Path = "", wrappers: Sequence[str] = ("state_dict", "model")) -> dict:
    """The tensors of a plain state_dict or of a training checkpoint that wraps one."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in wrappers:
            if key in obj and _is_state_dict(obj[key]):
                return dict(obj[key])
        raise CheckpointError(f"{path}: no state_dict found (top-level keys: {', '.join(map(str, list(obj)[:10]))}).")
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state_dict.")


def strip_prefix(state_dict: dict, prefix: str) -> dict:
    """Drop a prefix that every key carries (DataParallel's `module.`)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def state_dict_mismatch(model: nn.Module, state_dict: dict, limit: int = 8) -> str:
    """'' when `state_dict` fits `model` exactly, else what differs (for operators)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs network {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


def load_strict(model: nn.Module, state_dict: dict, path: str | Path = "") -> nn.Module:
    problem = state_dict_mismatch(model, state_dict)
    if problem:
        raise CheckpointError(f"{path}: does not fit the network: {problem}")
    model.load_state_dict(state_dict, strict=True)
    return model


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_stamp(path: Path) -> str:
    """Cheap identity of a weights file for cache keys (hashing GBs at every start is not)."""
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}"


def json_file(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# --- per-avatar cache ---------------------------------------------------------------------


def avatar_fingerprint(assets, *extra: str) -> str:
    """Identifies an avatar's assets (and whatever else a cache entry depends on)."""
    digest = hashlib.sha256(json.dumps(assets.meta, sort_keys=True).encode())
    for key in ("landmarks", "crop_boxes", "boxes"):
        if key in assets.track:
            digest.update(np.ascontiguousarray(assets.track[key]).tobytes())
    # The frames themselves: first and last, so a re-encoded video invalidates the cache.
    digest.update(assets.jpeg_frames[0])
    digest.update(assets.jpeg_frames[-1])
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:32]


def cache_dir(engine: str) -> Path | None:
    """DATA_DIR/cache/lipsync/<engine>/, or None outside a configured Django (benchmarks)."""
    try:
        from django.conf import settings

        root = Path(settings.DATA_DIR)
    except Exception:  # noqa: BLE001 - unconfigured settings just mean "no cache"
        return None
    folder = root / "cache" / "lipsync" / engine
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_load(engine: str, key: str) -> dict[str, np.ndarray] | None:
    folder = cache_dir(engine)
    path = folder / f"{key}.npz" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except Exception:  # noqa: BLE001 - a torn or stale cache file is rebuilt, never fatal
        path.unlink(missing_ok=True)
        return None


def cache_save(engine: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    folder = cache_dir(engine)
    if folder is None:
        return
    tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, folder / f"{key}.npz")  # atomic: a concurrent reader sees all or nothing


# --- geometry -----------------------------------------------------------------------------


def clip_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1 = max(0, min(x1, width - 2)), max(0, min(y1, height - 2))
    return x1, y1, max(x1 + 2, min(x2, width)), max(y1 + 2, min(y2, height))


def smooth_boxes(boxes: np.ndarray, window: int) -> np.ndarray:
    """Moving average over `window` frames (edges use the frames they have)."""
    if window <= 1 or len(boxes) < 2:
        return boxes.astype(np.float32)
    kernel = np.ones(window) / window
    padded = np.pad(boxes.astype(np.float64), ((window // 2, window - 1 - window // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(boxes.shape[1])], 1).astype(
        np.float32
    )


def paste(frame: np.ndarray, face: np.ndarray, box, mask: np.ndarray | None = None) -> np.ndarray:
    """Resize `face` into `box` of `frame` (in place); with `mask` (float, face-sized,
    1 = generated) blend instead of replacing the rectangle."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    resized = cv2.resize(face, (w, h), interpolation=cv2.INTER_LINEAR)
    if mask is None:
        frame[y1:y2, x1:x2] = resized
        return frame
    alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = (region + alpha * (resized.astype(np.float32) - region) + 0.5).astype(np.uint8)
    return frame


def feathered_mask(size: int, top: float, margin: float, blur: float) -> np.ndarray:
    """A soft mask of the lower face: 1 below `top` (fraction of the height), fading out
    at the crop's edges; stands in for the reference's face-parsing network."""
    mask = np.zeros((size, size), np.float32)
    m = int(margin * size)
    mask[int(top * size) : size - m, m : size - m] = 1.0
    k = max(3, int(blur * size) | 1)
    return cv2.GaussianBlur(mask, (k, k), 0)


# --- batching across sessions -------------------------------------------------------------


@dataclass
class _Request:
    inputs: tuple
    size: int
    result: object = None
    error: BaseException | None = None
    done: bool = False


class SessionBatcher:
    """Runs `fn` on the concatenation of the requests that concurrent sessions make.

    No timer: while one batch runs on the device, the requests of other sessions queue up
    and the next caller runs them all at once, so a lone session pays no latency and
    concurrent ones share the device's width (up to `max_batch` items per call).
    """

    def __init__(self, fn: Callable[..., torch.Tensor], max_batch: int):
        self.fn = fn
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._busy = False

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        request = _Request(inputs, int(inputs[0].shape[0]))
        with self._cond:
            self._pending.append(request)
        while True:
            with self._cond:
                while not request.done and self._busy:
                    self._cond.wait()
                if request.done:
                    break
                self._busy = True
                batch, total = [], 0
                while self._pending and (not batch or total + self._pending[0].size <= self.max_batch):
                    item = self._pending.pop(0)
                    batch.append(item)
                    total += item.size
            self._run(batch)
        if request.error is not None:
            raise request.error
        return request.result

    def _run(self, batch: list[_Request]) -> None:
        try:
            if len(batch) == 1:
                outputs = [self.fn(*batch[0].inputs)]
            else:
                merged = [torch.cat(parts, 0) for parts in zip(*(r.inputs for r in batch), strict=True)]
                outputs = list(torch.split(self.fn(*merged), [r.size for r in batch]))
            for request, output in zip(batch, outputs, strict=True):
                request.result = output
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting session
            for request in batch:
                request.error = exc
        with self._cond:
            for request in batch:
                request.done = True
            self._busy = False
            self._cond.notify_all()


# --- the render loop ----------------------------------------------------------------------


@functools.cache
def _compose_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="lipsync-compose")


class NeuralEngine(LipsyncEngine):
    """Batched rendering shared by the neural engines. Subclasses turn audio into per-frame
    features and run their network on a batch of (avatar frame, feature) pairs."""

    needs_weights = True
    batch_size = 16

    def device(self) -> str:
        return torch_device().type

    def audio_features(self, prepared, audio: AudioSegment) -> np.ndarray | torch.Tensor:
        """One feature item per 25 fps frame of `audio` (first axis = frame)."""
        raise NotImplementedError

    def infer(self, prepared, indices: list[int], features) -> list[np.ndarray]:
        """Generated face crops (uint8 BGR) for avatar frames `indices`."""
        raise NotImplementedError

    def compose(self, prepared, index: int, frame: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Put a generated face back into the full frame."""
        raise NotImplementedError

    def render(self, prepared, audio: AudioSegment, first_frame: int) -> Iterator[RenderedFrame]:
        count = audio.frame_count
        if count == 0:
            return
        features = self.audio_features(prepared, audio)
        # What the mouth should do, for quality checks: the same loudness curve viseme uses.
        opening = curves_from_audio(audio.samples)[0][:count]
        assets = prepared.assets
        pool = _compose_pool()

        def compose(index: int, face: np.ndarray) -> np.ndarray:
            return self.compose(prepared, index, assets.frame(index), face)

        def launch(start: int) -> list:
            # Decoding the JPEG frames and pasting (cv2 releases the GIL) run on the pool
            # while the device works on the next batch: on a GPU the CPU side is the limit.
            stop = min(count, start + self.batch_size)
            indices = [assets.idle_frame_index(first_frame + k) for k in range(start, stop)]
            faces = self.infer(prepared, indices, features[start:stop])
            return [
                (k, index, pool.submit(compose, index, face))
                for k, index, face in zip(range(start, stop), indices, faces, strict=True)
            ]

        pending = launch(0)
        for start in range(self.batch_size, count + self.batch_size, self.batch_size):
            following = launch(start) if start < count else []
            for k, index, future in pending:
                yield RenderedFrame(image=future.result(), index=index, mouth_open=float(opening[k]))
            pending = following

    def release(self, prepared) -> None:
        prepared.assets = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
