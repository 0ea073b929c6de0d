"""The MuseTalk engine: VAE latents of every avatar frame (lower half masked, and whole)
computed once and cached; per output frame one UNet step conditioned on whisper
features, the VAE decoder, and a feathered lower-face blend into the full frame."""

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
    feathered_mask,
    file_stamp,
    json_file,
    load_tensor_file,
    paste,
    smooth_boxes,
    torch_device,
    torch_dtype,
    unwrap_state_dict,
)
from . import weights
from .audio import feature_chunks, whisper_hidden_states
from .network import VAE_SCALE, PositionalEncoding, build_unet, build_vae, build_whisper_encoder, load_checkpoint

FACE = 256
CHIN_MARGIN = 10  # v1.5 extends the face box 10 px below the chin
BOX_SMOOTH = 5
PREP_VERSION = "musetalk-prep-1"


@dataclass
class PreparedMuseTalkAvatar:
    assets: object
    latents: torch.Tensor  # (N,8,32,32) masked then reference latents, ×0.18215, on the device
    boxes: np.ndarray  # (N,4) int


class MuseTalkModels:
    """UNet + VAE + whisper encoder + positional encoding, on one device."""

    def __init__(self, root: Path, device: torch.device, dtype: torch.dtype):
        paths = weights.weight_paths(root)
        missing = weights.weights_missing(root)
        if missing:
            raise CheckpointError("MuseTalk weights not found: " + "; ".join(missing))
        self.paths = paths
        self.device, self.dtype = device, dtype
        self.unet = build_unet(json_file(root / weights.UNET_CONFIG), load_checkpoint(paths["unet"]), paths["unet"])
        vae_dir = root / weights.VAE_DIR
        vae_sd = unwrap_state_dict(load_tensor_file(paths["vae"]), paths["vae"])
        self.vae = build_vae(json_file(vae_dir / "config.json"), vae_sd, paths["vae"])
        whisper_dir = root / weights.WHISPER_DIR
        whisper_sd = unwrap_state_dict(load_tensor_file(paths["whisper"]), paths["whisper"])
        self.whisper = build_whisper_encoder(json_file(whisper_dir / "config.json"), whisper_sd, paths["whisper"])
        self.pe = PositionalEncoding(self.whisper.config.d_model)
        for module in (self.unet, self.vae, self.whisper, self.pe):
            module.to(device, dtype)
        if device.type == "cuda":
            # Convolutions dominate (the VAE decoder most); NHWC is what the tensor cores want.
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        self.timestep = torch.zeros((), device=device, dtype=torch.long)

    def stamp(self) -> str:
        return file_stamp(self.paths["vae"])  # latents depend on the VAE encoder only

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,256,256) in -1..1 → scaled latent means (B,4,32,32)."""
        return self.vae.encode(images).latent_dist.mean * VAE_SCALE

    @torch.inference_mode()
    def generate(self, latents: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """latents (B,8,32,32), audio tokens (B,50,384) → RGB faces (B,3,256,256) in 0..1."""
        if self.device.type == "cuda":
            latents = latents.contiguous(memory_format=torch.channels_last)
        pred = self.unet(latents, self.timestep, encoder_hidden_states=self.pe(audio)).sample
        image = self.vae.decode(pred / VAE_SCALE).sample
        return (image / 2 + 0.5).clamp(0, 1)


class MuseTalkEngine(NeuralEngine):
    name = "MuseTalk"
    display_name = "MuseTalk 1.5"

    def __init__(self, weights_root: str | Path | None = None, batch_size: int = 16, max_batch: int = 64):
        self.weights_root = Path(weights_root) if weights_root else None
        self.batch_size = batch_size
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._models: MuseTalkModels | None = None
        self._batcher = None
        self.device_ = torch_device()
        self.dtype = torch_dtype(self.device_)
        self.blend_mask = feathered_mask(FACE, top=0.5, margin=0.06, blur=0.12)

    def models(self) -> MuseTalkModels:
        with self._lock:
            if self._models is None:
                self._models = MuseTalkModels(self.weights_root or weights.weights_dir(), self.device_, self.dtype)
                self._batcher = SessionBatcher(self._models.generate, self.max_batch)
            return self._models

    # --- per avatar -----------------------------------------------------------------

    @staticmethod
    def face_boxes(assets) -> np.ndarray:
        width, height = assets.size
        boxes = assets.track["boxes"].astype(np.float32).copy()
        boxes[:, 3] += CHIN_MARGIN
        return np.array([clip_box(b, width, height) for b in smooth_boxes(boxes, BOX_SMOOTH)], np.int32)

    def prepare(self, assets) -> PreparedMuseTalkAvatar:
        models = self.models()
        key = avatar_fingerprint(assets, PREP_VERSION, models.stamp())
        cached = cache_load(self.name, key)
        if cached is None:
            cached = self._prepare_arrays(assets, models)
            cache_save(self.name, key, cached)
        latents = torch.from_numpy(cached["latents"]).to(self.device_, self.dtype)
        return PreparedMuseTalkAvatar(assets=assets, latents=latents, boxes=cached["boxes"])

    def _prepare_arrays(self, assets, models: MuseTalkModels, batch: int = 16) -> dict[str, np.ndarray]:
        boxes = self.face_boxes(assets)
        latents = np.empty((assets.frame_count, 8, FACE // 8, FACE // 8), np.float16)
        for start in range(0, assets.frame_count, batch):
            crops = []
            for i in range(start, min(assets.frame_count, start + batch)):
                x1, y1, x2, y2 = boxes[i]
                crop = cv2.resize(assets.frame(i)[y1:y2, x1:x2], (FACE, FACE), interpolation=cv2.INTER_LANCZOS4)
                crops.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            full = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).to(self.device_, self.dtype) / 255.0
            masked = full.clone()
            masked[:, :, FACE // 2 :] = 0  # blanked in 0..1, i.e. -1 after normalising
            both = torch.cat([masked, full]) * 2 - 1
            encoded = models.encode(both)
            n = len(crops)
            latents[start : start + n] = torch.cat([encoded[:n], encoded[n:]], 1).float().cpu().numpy()
        return {"latents": latents, "boxes": boxes}

    # --- rendering ------------------------------------------------------------------

    def audio_features(self, prepared, audio: AudioSegment) -> torch.Tensor:
        models = self.models()
        states = whisper_hidden_states(models.whisper, audio.samples, self.device_, self.dtype)
        return feature_chunks(states, audio.frame_count)

    def infer(self, prepared: PreparedMuseTalkAvatar, indices: list[int], features) -> list[np.ndarray]:
        faces = self._batcher(prepared.latents[indices], features.to(self.device_, self.dtype))
        rgb = (faces.float() * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(face[..., ::-1]) for face in rgb]

    def compose(self, prepared: PreparedMuseTalkAvatar, index: int, frame: np.ndarray, face: np.ndarray) -> np.ndarray:
        return paste(frame, face, prepared.boxes[index], self.blend_mask)

    def release(self, prepared: PreparedMuseTalkAvatar) -> None:
        prepared.latents = None
        super().release(prepared)
