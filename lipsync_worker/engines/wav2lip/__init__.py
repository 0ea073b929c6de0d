"""`wav2lip`: the official 96×96 Wav2Lip generator on the avatar's face crops.

Exports are lazy so that `weights` (path checks) can be imported without torch.
"""
from __future__ import annotations

_EXPORTS = {
    "Wav2LipEngine": ".engine",
    "Wav2Lip": ".network",
    "load_checkpoint": ".network",
    "melspectrogram": ".audio",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(name)
