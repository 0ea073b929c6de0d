"""`ultralight`: Ultralight-Digital-Human, one checkpoint trained per avatar.

Exports are lazy so that `weights` (path checks) can be imported without torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "UltralightEngine": ".engine",
    "Model": ".network",
    "load_state_dict_any": ".network",
    "load_checkpoint": ".network",
    "ultralight_checkpoint_install": ".services",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
