"""`wav2lip`: the official 96×96 Wav2Lip generator on the avatar's face crops.

Exports are lazy so that `weights` (path checks) can be imported without torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "Wav2LipEngine": ".engine",
    "Wav2Lip": ".network",
    "load_checkpoint": ".network",
    "melspectrogram": ".audio",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
