"""`MuseTalk` (v1 and v1.5): one-step latent inpainting of the lower face from whisper features.

Exports are lazy so that `weights` (path checks) can be imported without torch.
"""
from __future__ import annotations

_EXPORTS = {
    "MuseTalkEngine": ".engine",
    "build_unet": ".network",
    "build_vae": ".network",
    "PositionalEncoding": ".network",
    "load_checkpoint": ".network",
    "feature_chunks": ".audio",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(name)
