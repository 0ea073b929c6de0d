"""Pasting one frame's lower face onto another frame: aligned, colour-matched, feathered.

The source's lower face is moved onto the target with the similarity transform that
best maps the source's anchor points (nose base, top of the upper lip, eyes) onto the
target's, so the upper lip sits where the target's was and the jaw opens from there. The blend mask covers the
target's lower face and the moved source's (the chin drops when the mouth opens), pulled in
from the cheeks, kept inside both faces' outlines (never the background beyond a turned
cheek) and feathered, so no seam and no second chin show. The source is shifted
to the target's skin colour measured around the mouth (the lighting of the two frames may
differ a little).
"""

from __future__ import annotations

import cv2
import numpy as np

from .mouth_bank import (
    ANCHOR_POINTS,
    ANCHOR_WEIGHTS,
    JAW_LINE,
    LIPS,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE_BASE_ROW,
    OUTER_LIP,
    MouthBank,
)

UPPER_LIP_TOP = 0
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152]
FACE_OVAL += [148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
CHIN_ARC = [136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365]


def similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """2x3 weighted least-squares similarity (rotation, uniform scale, shift) src -> dst."""
    w = weights / weights.sum()
    ms, md = (src * w[:, None]).sum(0), (dst * w[:, None]).sum(0)
    s, d = src - ms, dst - md
    a = (w * (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1])).sum()
    b = (w * (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0])).sum()
    norm = (w * (s**2).sum(1)).sum()
    a, b = a / norm, b / norm
    rot = np.array([[a, -b], [b, a]])
    shift = md - rot @ ms
    return np.hstack([rot, shift[:, None]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def reshape_lips(image: np.ndarray, lips: np.ndarray, moves: np.ndarray, mouth_w: float) -> np.ndarray:
    """`image` warped so that the lip outline at `lips` (pixels) moves by `moves`, smoothly:
    each pixel moves as the outline points near it do, and not at all far from the lips."""
    h, w = image.shape[:2]
    step = 4  # the moves are smooth: computed on a coarse grid, then scaled up
    gy, gx = np.mgrid[0:h:step, 0:w:step].astype(np.float32)
    dest = (lips + moves).astype(np.float32)
    spread = 0.2 * mouth_w
    near = np.exp(-((gx[..., None] - dest[:, 0]) ** 2 + (gy[..., None] - dest[:, 1]) ** 2) / (2 * spread**2))
    # A weighted mean of the points' moves near the outline; fading out beyond it.
    total = np.maximum(near.sum(axis=-1), 1.0)

    def full(axis: int) -> np.ndarray:
        coarse = ((near * moves[:, axis]).sum(-1) / total).astype(np.float32)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)

    move_x, move_y = full(0), full(1)
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, grid_x - move_x, grid_y - move_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def blend_region(target_lm: np.ndarray, moved_lm: np.ndarray) -> np.ndarray:
    """The polygon (target pixels) that takes the source: the lower faces of both, the
    sides pulled in towards the mouth so the cheeks' outline stays the target's."""
    center = (target_lm[MOUTH_LEFT] + target_lm[MOUTH_RIGHT]) / 2
    mouth_w = float(np.linalg.norm(target_lm[MOUTH_RIGHT] - target_lm[MOUTH_LEFT]))
    pts = []
    for lm in (target_lm, moved_lm):
        jaw = lm[JAW_LINE]
        jaw = center + (jaw - center) * np.array([0.82, 1.0])  # in from the cheeks
        pts.append(jaw)
        top = lm[NOSE_BASE_ROW]
        # Halfway between the nose base and the upper lip: the nostrils stay the target's.
        lip_top = lm[UPPER_LIP_TOP]
        top = top + 0.45 * (lip_top - lm[2])
        top[:, 0] = center[0] + (top[:, 0] - center[0]) * 1.15
        pts.append(top)
    # Below both chins, so that the feathered edge passes under them: no second chin.
    for lm in (target_lm, moved_lm):
        pts.append(lm[JAW_LINE[4:-4]] + np.array([0, 0.2 * mouth_w]))
    return cv2.convexHull(np.concatenate(pts).astype(np.float32)).reshape(-1, 2)


def face_region(lm: np.ndarray, other_lm: np.ndarray) -> list[np.ndarray]:
    """A face's outline, pulled in a little, and under its chin down past the other
    face's chin (the two chins differ when one mouth is open and the other closed)."""
    centre = lm[FACE_OVAL].mean(axis=0)
    oval = centre + (lm[FACE_OVAL] - centre) * 0.97
    down = lm[152] - lm[2]
    length = float(np.linalg.norm(down))
    down = down / max(length, 1e-6)
    drop = abs(float((other_lm[152] - lm[152]) @ down)) + 0.12 * length
    chin = lm[CHIN_ARC]
    return [oval, cv2.convexHull(np.concatenate([chin, chin + drop * down]).astype(np.float32)).reshape(-1, 2)]


def paste_mouth(
    frame: np.ndarray,
    target_lm: np.ndarray,
    bank: MouthBank,
    entry: int,
    crop: np.ndarray | None = None,
    shift: tuple[float, float] = (0.0, 0.0),
    reshape: np.ndarray | None = None,
) -> np.ndarray:
    """`frame` with the lower face of bank entry `entry` blended in (in place), moved by
    `shift` pixels from where the anchor points put it, its lips' outline (LIPS) moved by
    `reshape` ((lips, 2) pixels)."""
    src_lm = bank.landmarks[entry]
    if crop is None:
        crop = bank.crop(entry)
    m = similarity(src_lm[ANCHOR_POINTS], target_lm[ANCHOR_POINTS], ANCHOR_WEIGHTS)
    m[:, 2] += shift
    moved = _apply(m, src_lm)
    poly = blend_region(target_lm, moved)
    mouth_w = float(np.linalg.norm(target_lm[MOUTH_RIGHT] - target_lm[MOUTH_LEFT]))
    feather = max(2.0, 0.09 * mouth_w)
    pad = int(np.ceil(2.5 * feather))
    h, w = frame.shape[:2]
    x0, y0 = np.floor(poly.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return frame
    m_roi = m.copy()
    m_roi[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(crop, m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if reshape is not None and np.abs(reshape).max() > 0.25:
        warped = reshape_lips(warped, moved[LIPS] - (x0, y0), reshape, mouth_w)
    region = frame[y0:y1, x0:x1]
    h_roi, w_roi = region.shape[:2]
    # The mask is smooth: made at half size (a quarter of the work), then scaled up.
    hs, ws = (h_roi + 1) // 2, (w_roi + 1) // 2
    origin = np.array([x0, y0], np.float64)

    def half(points: np.ndarray) -> np.ndarray:
        return np.round((points - origin) * 0.5).astype(np.int32)

    mask = np.zeros((hs, ws), np.uint8)
    cv2.fillPoly(mask, [half(poly)], 255)
    # Never past the target's face outline (background, hair, a turned cheek), nor past
    # the source's (what lay beyond its cheek is not face), except under the chins.
    for lm, other in ((target_lm, moved), (moved, target_lm)):
        face = np.zeros_like(mask)
        for part in face_region(lm, other):  # one call each: one call fills overlaps even-odd
            cv2.fillPoly(face, [half(part)], 255)
        mask = cv2.bitwise_and(mask, face)
    k = int(2 * round(0.6 * feather) + 1)
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))  # the blend ends inside
    mask = cv2.GaussianBlur(mask.astype(np.float32) * (1 / 255), (0, 0), feather / 2)
    # Colour: match the source's skin around the mouth to the target's (the lips and the
    # gap between them differ on purpose and are left out), on the half-size grid.
    lips = np.zeros_like(face)
    for lm in (target_lm, moved):
        cv2.fillPoly(lips, [half(lm[OUTER_LIP])], 255)
    lips = cv2.dilate(lips, np.ones((3, 3), np.uint8))
    ring = ((mask > 0.35) & (lips == 0)).astype(np.uint8)
    if int(ring.sum()) > 30:
        region_half, warped_half = region[::2, ::2], warped[::2, ::2]
        shift = np.array(cv2.mean(region_half, ring)[:3]) - np.array(cv2.mean(warped_half, ring)[:3])
        shift = np.clip(shift, -25, 25)
        warped = cv2.add(warped, (*shift, 0.0), dtype=cv2.CV_8U)
    alpha = cv2.resize(mask, (w_roi, h_roi), interpolation=cv2.INTER_LINEAR)
    frame[y0:y1, x0:x1] = cv2.blendLinear(warped, region, alpha, 1.0 - alpha)
    return frame
