"""Avatars prepared in this worker process: engine + assets in memory, shared by every
render job and live session of the avatar, so they are loaded once.

Live sessions of an avatar whose engine renders at any size (viseme) get it loaded at the
size they send (frame_size.video_size): an entry of its own beside the full-size one that
render jobs use."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from .assets import AvatarAssets
from .engines import engine_class, get_engine
from .engines.base import LipsyncEngine
from .frame_size import video_size


@dataclass
class WarmAvatar:
    avatar_id: int
    assets_path: str
    engine: LipsyncEngine
    handle: object
    assets: AvatarAssets


_lock = threading.Lock()
# (avatar id, loaded at the live sent size) -> the prepared avatar, least recently used first.
_warm: OrderedDict[tuple[int, bool], WarmAvatar] = OrderedDict()
# Avatars with live sessions: never evicted for a render job (their sessions use the handle).
_pinned: set[int] = set()


def warm_avatar_pin(avatar_id: int, pinned: bool = True) -> None:
    with _lock:
        (_pinned.add if pinned else _pinned.discard)(avatar_id)


def warm_avatar_get(avatar, *, live: bool = False) -> WarmAvatar:
    """The prepared avatar, loading it on first use (and again after reprocessing).
    `live`: for live sessions (at their sent size when the engine renders at any size)."""
    sized = video_size if live and engine_class(avatar.avatar_model).renders_at_any_size else None
    key = (avatar.pk, sized is not None)
    with _lock:
        current = _warm.get(key)
        if current is not None and current.assets_path == avatar.assets_path:
            _warm.move_to_end(key)
            return current
    engine = get_engine(avatar.avatar_model)
    assets = AvatarAssets.from_storage(avatar.assets_path, sized)
    assets.meta["avatar_id"] = avatar.pk  # engines with per-avatar weights (ultralight) look them up by it
    warm = WarmAvatar(avatar.pk, avatar.assets_path, engine, engine.prepare(assets), assets)
    with _lock:
        old = _warm.pop(key, None)
        _warm[key] = warm
        evicted = [old] if old is not None else []
        # Least recently used first (a use moves an entry to the end); never a pinned one, nor
        # the one just loaded (its caller is about to use it): pinned avatars can overfill it.
        for other in [k for k in _warm if k[0] not in _pinned and k != key]:
            if len(_warm) <= settings.LIPSYNC_WARM_AVATARS_MAX:
                break
            evicted.append(_warm.pop(other))
    for item in evicted:
        item.engine.release(item.handle)
    return warm


def warm_avatar_release(avatar_id: int) -> bool:
    """Forget every prepared copy of the avatar (full size and live size)."""
    with _lock:
        gone = [_warm.pop(key) for key in [k for k in _warm if k[0] == avatar_id]]
    for warm in gone:
        warm.engine.release(warm.handle)
    return bool(gone)


def warm_avatar_ids() -> list[int]:
    with _lock:
        return list(dict.fromkeys(pk for pk, _ in _warm))
