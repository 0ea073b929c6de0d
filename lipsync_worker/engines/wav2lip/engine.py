"""The wav2lip engine: 96×96 face crops prepared once per avatar, mel windows per frame,
the generator in batches (fp16 on CUDA), the mouth pasted back into the full frame."""

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
from .audio import mel_chunks, melspectrogram
from .network import build_wav2lip

FACE = 96
PAD_BOTTOM = 10  # the reference pads the detected box 10 px downwards to include the chin
BOX_SMOOTH = 5
PREP_VERSION = "wav2lip-prep-1"


@dataclass
class PreparedWav2LipAvatar:
    assets: object
    crops: torch.Tensor  # (N,96,96,3) uint8 on the device
    boxes: np.ndarray  # (N,4) int, full-frame pixels


class Wav2LipEngine(NeuralEngine):
    name = "wav2lip"
    display_name = "Wav2Lip"

    def __init__(self, checkpoint: str | Path | None = None, batch_size: int = 16, max_batch: int = 128):
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.batch_size = batch_size
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._model = None
        self._batcher = None

    # --- model, loaded once per worker and shared by every avatar and session ---------

    def model(self):
        with self._lock:
            if self._model is None:
                path = self.checkpoint or weights.checkpoint_path()
                if path is None:
                    raise CheckpointError("Wav2Lip weights not found: " + "; ".join(weights.weights_missing()))
                self.device_ = torch_device()
                self.dtype = torch_dtype(self.device_)
                # NHWC convolutions are about twice as fast on CPUs and what GPU tensor cores want.
                self._model = build_wav2lip(path).to(self.device_, self.dtype, memory_format=torch.channels_last)
                self._batcher = SessionBatcher(self._forward, self.max_batch)
            return self._model

    @torch.inference_mode()
    def _forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return self._model(mel, face)

    # --- per avatar -----------------------------------------------------------------

    def prepare(self, assets) -> PreparedWav2LipAvatar:
        self.model()
        key = avatar_fingerprint(assets, PREP_VERSION)
        cached = cache_load(self.name, key)
        if cached is None:
            cached = self._prepare_arrays(assets)
            cache_save(self.name, key, cached)
        crops = torch.from_numpy(cached["crops"]).to(self.device_)
        return PreparedWav2LipAvatar(assets=assets, crops=crops, boxes=cached["boxes"])

    @staticmethod
    def face_boxes(assets) -> np.ndarray:
        width, height = assets.size
        boxes = assets.track["boxes"].astype(np.float32).copy()
        boxes[:, 3] += PAD_BOTTOM
        return np.array([clip_box(b, width, height) for b in smooth_boxes(boxes, BOX_SMOOTH)], np.int32)

    def _prepare_arrays(self, assets) -> dict[str, np.ndarray]:
        boxes = self.face_boxes(assets)
        crops = np.empty((assets.frame_count, FACE, FACE, 3), np.uint8)
        for i in range(assets.frame_count):
            x1, y1, x2, y2 = boxes[i]
            crops[i] = cv2.resize(assets.frame(i)[y1:y2, x1:x2], (FACE, FACE), interpolation=cv2.INTER_LINEAR)
        return {"crops": crops, "boxes": boxes}

    # --- rendering ------------------------------------------------------------------

    def audio_features(self, prepared, audio: AudioSegment) -> np.ndarray:
        return mel_chunks(melspectrogram(audio.samples), audio.frame_count)

    def network_inputs(self, crops: torch.Tensor, mels: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mel (B,1,80,16), face (B,6,96,96)): lower half of the face blanked, stacked
        in front of the unmasked reference, scaled to 0..1."""
        faces = crops.permute(0, 3, 1, 2).to(self.dtype) / 255.0
        masked = faces.clone()
        masked[:, :, FACE // 2 :] = 0
        mel = torch.as_tensor(mels).to(self.device_, self.dtype).unsqueeze(1)
        return mel, torch.cat((masked, faces), dim=1).contiguous(memory_format=torch.channels_last)

    def infer(self, prepared: PreparedWav2LipAvatar, indices: list[int], features) -> list[np.ndarray]:
        mel, face = self.network_inputs(prepared.crops[indices], features)
        out = self._batcher(mel, face)
        faces = (out.float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return list(faces)

    def compose(self, prepared: PreparedWav2LipAvatar, index: int, frame: np.ndarray, face: np.ndarray) -> np.ndarray:
        return paste(frame, face, prepared.boxes[index])

    def release(self, prepared: PreparedWav2LipAvatar) -> None:
        prepared.crops = None
        super().release(prepared)
