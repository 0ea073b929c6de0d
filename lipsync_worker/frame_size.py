"""The size live sessions send an avatar's frames at, and shrinking a frame to it.

Used by the live sessions (each picture they send) and by the warm-up of an avatar whose
engine renders at any size (its frames and face track loaded at this size once, so that
speech is rendered, decoded and cached at the size it is sent at: issue #14).
"""

from __future__ import annotations

import cv2
import numpy as np
from django.conf import settings

# H.264 level 3.1 (profile-level-id 42e01f, what browsers and aiortc declare): at most
# 3600 macroblocks of 16x16 per frame (1280x720).
MAX_MACROBLOCKS = 3600


def video_size(width: int, height: int, max_height: int | None = None) -> tuple[int, int]:
    """The size an avatar's frames are sent at: no taller than `max_height`
    (LIVE_VIDEO_MAX_HEIGHT), within MAX_MACROBLOCKS, even (YUV 4:2:0), aspect kept."""
    max_height = settings.LIVE_VIDEO_MAX_HEIGHT if max_height is None else max_height
    scale = min(1.0, max_height / height, (MAX_MACROBLOCKS * 256 / (width * height)) ** 0.5)
    while True:
        w = max(2, int(round(width * scale / 2)) * 2)
        h = max(2, int(round(height * scale / 2)) * 2)
        if ((w + 15) // 16) * ((h + 15) // 16) <= MAX_MACROBLOCKS:
            return w, h
        scale *= 0.995  # rounding up to whole macroblocks went over


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (BGR) at `size` (width, height): as it is when it already has that size.

    INTER_AREA (the right filter for shrinking) is fast in OpenCV only for whole-number
    ratios (2.2 ms for 1920x1080 to 960x540, but 23 ms for 576x768 to 404x540): shrink by
    the whole-number part of the ratio with it, then by the rest (less than 2x, where a
    bilinear filter does not alias) with INTER_LINEAR."""
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    factor = min(w // width, h // height)
    if factor >= 2:
        # Whole multiples of the factor, so that OpenCV takes its fast integer path.
        cropped = image[: h - h % factor, : w - w % factor]
        image = cv2.resize(
            cropped, (cropped.shape[1] // factor, cropped.shape[0] // factor), interpolation=cv2.INTER_AREA
        )
        if image.shape[1] == width and image.shape[0] == height:
            return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
