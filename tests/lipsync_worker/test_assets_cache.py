"""Decoded frames are kept (within one budget per process) and handed out as copies."""

import gc

import cv2
import numpy as np

from lipsync_worker import assets as assets_module
from lipsync_worker.assets import AvatarAssets


def _jpeg(value: int) -> bytes:
    return cv2.imencode(".jpg", np.full((48, 64, 3), value, np.uint8))[1].tobytes()


def _assets(*values) -> AvatarAssets:
    return AvatarAssets(meta={"width": 64, "height": 48}, track={}, jpeg_frames=[_jpeg(v) for v in values])


def test_a_frame_is_decoded_once_and_each_caller_gets_its_own_copy(monkeypatch):
    assets = _assets(10, 200)
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(assets_module.cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    first = assets.frame(1)
    first[:] = 0  # an engine paints on its frame
    again = assets.frame(1)
    assert len(decoded) == 1 and abs(int(again.mean()) - 200) <= 2
    # An engine that replaces a frame (viseme's closed idle mouths): the new one is decoded.
    assets.jpeg_frames = [assets.jpeg_frames[0], _jpeg(90)]
    assert abs(int(assets.frame(1).mean()) - 90) <= 2 and len(decoded) == 2


def test_the_shared_frame_is_the_cached_one_and_cannot_be_painted_on():
    assets = _assets(10, 200)
    shown = assets.frame_readonly(1)
    assert shown is assets.frame_readonly(1) and not shown.flags.writeable
    mine = assets.frame(1)
    mine[:] = 0
    assert abs(int(assets.frame_readonly(1).mean()) - 200) <= 2


def test_the_budget_is_shared_by_every_avatar_and_freed_with_it(settings):
    # LIPSYNC_FRAME_CACHE_MB: room for what is cached already and one more frame.
    settings.LIPSYNC_FRAME_CACHE_MB = (assets_module._decoded_total[0] + 48 * 64 * 3) / 2**20
    one, two = _assets(1), _assets(2)
    one.frame(0)
    two.frame(0)  # over the budget: decoded, not kept
    assert len(one._decoded) == 1 and not two._decoded
    del one
    gc.collect()
    two.frame(0)  # the first avatar's share came back
    assert len(two._decoded) == 1
