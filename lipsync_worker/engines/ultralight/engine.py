"""The ultralight engine: a checkpoint trained on the avatar itself, 168×168 crops made
once per avatar, HuBERT windows per frame, the U-Net in batches (fp16 on CUDA)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..base import AudioSegment
from ..neural import (
    CheckpointError,
    NeuralEngine,
    SessionBatcher,
    avatar_fingerprint,
    cache_load,
    cache_save,
    clip_box,
    paste,
    smooth_boxes,
    torch_device,
    torch_dtype,
)
from . import weights
from .audio import feature_windows, hubert_features, load_hubert
from .network import build_ultralight

CROP = 168
INNER = slice(4, 164)  # the network sees the 160×160 centre of the crop
MASK_RECT = ((5, 5), (150, 145))  # the blanked mouth area of the reference implementation
NOSE_BRIDGE = 168  # MediaPipe face-mesh point between the eyes: the top of the crop
BOX_SMOOTH = 5
PREP_VERSION = "ultralight-prep-1"


@dataclass
class PreparedUltralightAvatar:
    assets: object
    model: torch.nn.Module
    batcher: SessionBatcher
    crops: torch.Tensor  # (N,168,168,3) uint8 on the device
    boxes: np.ndarray  # (N,4) int


def crop_boxes(assets) -> np.ndarray:
    """Square boxes, face-wide, from the eyes to below the chin: the crop the Ultralight
    training recipe cuts from its own landmarks, rebuilt from MediaPipe's."""
    width, height = assets.size
    lms = assets.track["landmarks"].astype(np.float32)
    x1, x2 = lms[:, :, 0].min(1), lms[:, :, 0].max(1)
    top = lms[:, NOSE_BRIDGE, 1]
    side = x2 - x1
    boxes = smooth_boxes(np.stack([x1, top, x1 + side, top + side], 1), BOX_SMOOTH)
    return np.array([clip_box(b, width, height) for b in boxes], np.int32)


class UltralightEngine(NeuralEngine):
    name = "ultralight"
    display_name = "Ultralight Digital Human"

    def __init__(
        self,
        hubert_dir: str | Path | None = None,
        checkpoint: str | Path | None = None,
        batch_size: int = 16,
        max_batch: int = 128,
    ):
        self.hubert_dir = Path(hubert_dir) if hubert_dir else None
        self.checkpoint = Path(checkpoint) if checkpoint else None  # all avatars (tests, benchmarks)
        self.batch_size = batch_size
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._hubert = None
        self.device_ = torch_device()
        self.dtype = torch_dtype(self.device_)

    def hubert(self):
        with self._lock:
            if self._hubert is None:
                folder = self.hubert_dir or weights.hubert_dir()
                path = next((folder / n for n in weights.HUBERT_FILES if (folder / n).is_file()), None)
                if path is None:
                    raise CheckpointError(
                        f"HuBERT weights not found in {folder} ({' or '.join(weights.HUBERT_FILES)})."
                    )
                self._hubert = load_hubert(folder, path).to(self.device_, self.dtype)
            return self._hubert

    def avatar_checkpoint(self, assets) -> Path:
        if self.checkpoint is not None:
            return self.checkpoint
        avatar_id = assets.meta.get("avatar_id", getattr(assets, "avatar_id", None))
        if avatar_id is None:
            raise CheckpointError("Ultralight needs the avatar's id to find its trained checkpoint.")
        path = weights.avatar_checkpoint_path(avatar_id)
        if not path.is_file():
            raise CheckpointError(f"This avatar has no Ultralight checkpoint: upload it to {path}.")
        return path

    def prepare(self, assets) -> PreparedUltralightAvatar:
        self.hubert()
        model = build_ultralight(self.avatar_checkpoint(assets))
        if model.mode != "hubert":
            raise CheckpointError("This checkpoint was trained on WeNet features; this worker computes HuBERT ones.")
        model = model.to(self.device_, self.dtype, memory_format=torch.channels_last)  # NHWC: ~2× on CPU
        key = avatar_fingerprint(assets, PREP_VERSION)
        cached = cache_load(self.name, key)
        if cached is None:
            cached = self._prepare_arrays(assets)
            cache_save(self.name, key, cached)

        @torch.inference_mode()
        def forward(face: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
            return model(face, audio)

        return PreparedUltralightAvatar(
            assets=assets,
            model=model,
            batcher=SessionBatcher(forward, self.max_batch),
            crops=torch.from_numpy(cached["crops"]).to(self.device_),
            boxes=cached["boxes"],
        )

    def _prepare_arrays(self, assets) -> dict[str, np.ndarray]:
        boxes = crop_boxes(assets)
        crops = np.empty((assets.frame_count, CROP, CROP, 3), np.uint8)
        for i in range(assets.frame_count):
            x1, y1, x2, y2 = boxes[i]
            crops[i] = cv2.resize(assets.frame(i)[y1:y2, x1:x2], (CROP, CROP), interpolation=cv2.INTER_LINEAR)
        return {"crops": crops, "boxes": boxes}

    def audio_features(self, prepared, audio: AudioSegment) -> np.ndarray:
        features = hubert_features(self.hubert(), audio.samples, self.device_, self.dtype)
        return feature_windows(features, audio.frame_count)

    def network_inputs(self, crops: torch.Tensor, windows) -> tuple[torch.Tensor, torch.Tensor]:
        """(face (B,6,160,160): reference then masked, 0..1; audio (B,16,32,32))."""
        faces = crops[:, INNER, INNER].permute(0, 3, 1, 2).to(self.dtype) / 255.0
        masked = faces.clone()
        (x1, y1), (x2, y2) = MASK_RECT
        masked[:, :, y1 : y2 + 1, x1 : x2 + 1] = 0
        audio = torch.as_tensor(windows).to(self.device_, self.dtype)
        return torch.cat((faces, masked), dim=1).contiguous(memory_format=torch.channels_last), audio

    def infer(self, prepared: PreparedUltralightAvatar, indices: list[int], features) -> list[np.ndarray]:
        face, audio = self.network_inputs(prepared.crops[indices], features)
        out = prepared.batcher(face, audio)
        inner = (out.float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
        crops = prepared.crops[indices].clone()
        crops[:, INNER, INNER] = inner
        return list(crops.cpu().numpy())

    def compose(
        self, prepared: PreparedUltralightAvatar, index: int, frame: np.ndarray, face: np.ndarray
    ) -> np.ndarray:
        return paste(frame, face, prepared.boxes[index])

    def release(self, prepared: PreparedUltralightAvatar) -> None:
        prepared.model = prepared.batcher = prepared.crops = None
        super().release(prepared)
