"""`ultralight`: Ultralight-Digital-Human, one checkpoint trained per avatar.

Exports are lazy so that `weights` (path checks) can be imported without torch.
"""
from __future__ import annotations

_EXPORTS = {
    "UltralightEngine": ".engine",
    "Model": ".network",
    "load_state_dict_any": ".network",
    "load_checkpoint": ".network",
    "ultralight_checkpoint_install": ".services",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(name)
