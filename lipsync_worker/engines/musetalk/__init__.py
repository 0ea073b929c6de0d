"""`MuseTalk` (v1 and v1.5): one-step latent inpainting of the lower face from whisper features.

Exports are lazy so that `weights` (path checks) can be imported without torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "MuseTalkEngine": ".engine",
    "build_unet": ".network",
    "build_vae": ".network",
    "PositionalEncoding": ".network",
    "load_checkpoint": ".network",
    "feature_chunks": ".audio",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
