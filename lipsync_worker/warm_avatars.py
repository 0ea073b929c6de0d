"""Avatars prepared in this worker process: engine + assets in memory, shared by every
render job and live session of the avatar, so they are loaded once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from .assets import AvatarAssets
from .engines import get_engine
from .engines.base import LipsyncEngine


@dataclass
class WarmAvatar:
    avatar_id: int
    assets_path: str
    engine: LipsyncEngine
    handle: object
    assets: AvatarAssets


_lock = threading.Lock()
_warm: OrderedDict[int, WarmAvatar] = OrderedDict()
# Avatars with live sessions: never evicted for a render job (their sessions use the handle).
_pinned: set[int] = set()


def warm_avatar_pin(avatar_id: int, pinned: bool = True) -> None:
    with _lock:
        (_pinned.add if pinned else _pinned.discard)(avatar_id)


def warm_avatar_get(avatar) -> WarmAvatar:
    """The prepared avatar, loading it on first use (and again after reprocessing)."""
    with _lock:
        current = _warm.get(avatar.pk)
        if current is not None and current.assets_path == avatar.assets_path:
            _warm.move_to_end(avatar.pk)
            return current
    engine = get_engine(avatar.avatar_model)
    assets = AvatarAssets.from_storage(avatar.assets_path)
    assets.meta["avatar_id"] = avatar.pk  # engines with per-avatar weights (ultralight) look them up by it
    warm = WarmAvatar(avatar.pk, avatar.assets_path, engine, engine.prepare(assets), assets)
    with _lock:
        old = _warm.pop(avatar.pk, None)
        _warm[avatar.pk] = warm
        evicted = [old] if old is not None else []
        # Least recently used first (a use moves an entry to the end); never a pinned one, nor
        # the one just loaded (its caller is about to use it): pinned avatars can overfill it.
        for key in [k for k in _warm if k not in _pinned and k != avatar.pk]:
            if len(_warm) <= settings.LIPSYNC_WARM_AVATARS_MAX:
                break
            evicted.append(_warm.pop(key))
    for item in evicted:
        item.engine.release(item.handle)
    return warm


def warm_avatar_release(avatar_id: int) -> bool:
    with _lock:
        warm = _warm.pop(avatar_id, None)
    if warm is None:
        return False
    warm.engine.release(warm.handle)
    return True


def warm_avatar_ids() -> list[int]:
    with _lock:
        return list(_warm)
