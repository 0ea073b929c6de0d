"""Opening and closing the avatar's own mouth by warping the lower face.

For each frame the lower face is remapped in a frame aligned with the mouth (u along the
lips, v down the face): the jaw, chin and lower lip move down together, the upper lip a
little up, and the gap between the lips shows a mouth interior (the avatar's own teeth
when its video shows them, painted teeth otherwise). The displacement fades to zero at the
edges of the region, so the rest of the frame is the idle frame untouched and there is no
seam; the region follows the head because it is rebuilt from every frame's landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MOUTH_LEFT, MOUTH_RIGHT = 61, 291
LIP_INNER_TOP, LIP_INNER_BOTTOM = 13, 14
LIP_OUTER_BOTTOM = 17
NOSE_BASE, CHIN = 2, 152
JAW_LEFT, JAW_RIGHT = 172, 397

# The widest opening, as a share of the mouth's width.
MAX_OPENING = 0.42
# How the opening is shared between the jaw (lower lip) and the upper lip.
LOWER_SHARE = 0.78
INTERIOR_BGR = np.array([38, 26, 62], np.float32)
TONGUE_BGR = np.array([70, 62, 150], np.float32)
TEETH_BGR = np.array([208, 214, 222], np.float32)
# Regions larger than this (pixels) compute the warp's displacement at half resolution.
COARSE_AREA = 40000


def _smooth(values: np.ndarray, window: int = 5) -> np.ndarray:
    if len(values) < 2:
        return values
    pad = window // 2
    padded = np.concatenate([np.repeat(values[:1], pad, 0), values, np.repeat(values[-1:], pad, 0)])
    kernel = np.ones(window) / window
    flat = padded.reshape(len(padded), -1)
    out = np.stack([np.convolve(flat[:, j], kernel, mode="valid") for j in range(flat.shape[1])], axis=1)
    return out.reshape(values.shape)


def _smoothstep(edge0, edge1, x):
    t = np.clip((x - edge0) / np.maximum(edge1 - edge0, 1e-6), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@dataclass
class MouthGeometry:
    """Per-frame mouth geometry in pixels, smoothed over time (N frames)."""

    center: np.ndarray  # (N,2)
    angle: np.ndarray  # (N,) radians of the line through the mouth corners
    width: np.ndarray  # (N,)
    opening: np.ndarray  # (N,) inner-lip gap
    v_lower_lip: np.ndarray  # (N,) outer lower lip below the centre
    v_chin: np.ndarray
    v_nose: np.ndarray  # negative: above the centre
    face_half_width: np.ndarray
    rest_opening: float  # the avatar's mouth at rest
    shows_teeth: bool  # whether its own video already shows teeth at rest

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> MouthGeometry:
        lm = landmarks.astype(np.float64)
        left, right = lm[:, MOUTH_LEFT], lm[:, MOUTH_RIGHT]
        top, bottom = lm[:, LIP_INNER_TOP], lm[:, LIP_INNER_BOTTOM]
        center = (left + right + top + bottom) / 4
        axis = right - left
        angle = np.arctan2(axis[:, 1], axis[:, 0])
        down = np.stack([-np.sin(angle), np.cos(angle)], axis=1)
        across = np.stack([np.cos(angle), np.sin(angle)], axis=1)

        def v_of(idx):
            return ((lm[:, idx] - center) * down).sum(axis=1)

        def u_of(idx):
            return ((lm[:, idx] - center) * across).sum(axis=1)

        width = np.linalg.norm(axis, axis=1)
        opening = np.maximum(v_of(LIP_INNER_BOTTOM) - v_of(LIP_INNER_TOP), 0)
        half = np.maximum(np.abs(u_of(JAW_LEFT)), np.abs(u_of(JAW_RIGHT)))
        rest = float(np.percentile(opening, 20))
        return cls(
            center=_smooth(center),
            angle=_smooth(angle),
            width=_smooth(width),
            opening=_smooth(opening),
            v_lower_lip=_smooth(np.maximum(v_of(LIP_OUTER_BOTTOM), 2.0)),
            v_chin=_smooth(np.maximum(v_of(CHIN), width * 0.6)),
            v_nose=_smooth(np.minimum(v_of(NOSE_BASE), -width * 0.2)),
            face_half_width=_smooth(np.maximum(half, width * 0.9)),
            rest_opening=rest,
            shows_teeth=rest > 0.08 * float(np.median(width)),
        )


def _paint_interior(warped: np.ndarray, f: dict, geo: MouthGeometry, W: float, delta: float, d_low, d_up) -> None:
    """Paint the gap between the parted lips in `warped` (in place)."""
    v, lens, below, gap = f["v"], f["lens"], f["below"], f["gap"]
    # A narrow gap is a soft shadow between the lips, not a drawn line: the interior's
    # opacity and darkness grow with the gap's height at that point of the mouth.
    gap_height = max(delta, 0) * lens
    opened = _smoothstep(0.015 * W, 0.09 * W, gap_height)
    alpha = np.clip(gap / 1.5, 0, 1) * (lens > 0) * (0.35 + 0.65 * opened)
    if alpha.max() <= 0:
        return
    depth = np.where(below, v / max(d_low, 1.0), -v / max(d_up, 1.0))  # 0 at the lip line
    shade = (0.55 + 0.45 * lens)[..., None]
    interior = INTERIOR_BGR + (TONGUE_BGR - INTERIOR_BGR) * np.clip(depth, 0, 1)[..., None] * (below[..., None])
    # Lips' own colour in shadow where barely parted, the cavity where wide open.
    lip_shadow = cv2.GaussianBlur(warped, (0, 0), 2).astype(np.float32) * 0.55
    colour = lip_shadow + (interior * shade - lip_shadow) * opened[..., None]
    if not geo.shows_teeth:
        # Upper teeth hang just below the upper lip: thinner towards the corners, and
        # never more than part of the gap, so the corners stay dark.
        teeth_h = np.minimum(0.1 * W * np.sqrt(lens), 0.4 * gap_height)
        top_edge = -f["shift_up"]  # where the upper lip's inner edge now is
        teeth = np.clip((top_edge + teeth_h - v) / 1.5, 0, 1) * (v >= top_edge - 1) * opened
        tint = ((0.5 + 0.3 * lens) * (0.8 + 0.2 * opened))[..., None]  # in the upper lip's shadow
        colour = colour * (1 - teeth[..., None]) + (TEETH_BGR * tint) * teeth[..., None]
    a = alpha[..., None]
    warped[:] = (warped.astype(np.float32) * (1 - a) + colour * a).astype(np.uint8)


def render_mouth(frame: np.ndarray, geo: MouthGeometry, i: int, opening: float, rounding: float = 0.0) -> np.ndarray:
    """Frame `frame` (avatar frame i) with the mouth opened to `opening` (0..1). In place."""
    W = float(geo.width[i])
    target = geo.rest_opening + opening * (MAX_OPENING * W - geo.rest_opening)
    delta = target - float(geo.opening[i])
    if abs(delta) < 0.3 and abs(rounding) < 0.05:
        return frame
    d_low, d_up = LOWER_SHARE * delta, (1 - LOWER_SHARE) * delta
    ca, sa = np.cos(geo.angle[i]), np.sin(geo.angle[i])
    # Part the lips at the lower lip's inner edge: whatever the video shows between the
    # lips (the upper teeth, mostly) stays with the upper jaw; the lower jaw drops away.
    split = float(geo.opening[i]) / 2
    cx, cy = geo.center[i] + split * np.array([-sa, ca])
    fw, v_chin, v_nose, v_lip = (
        float(geo.face_half_width[i]),
        float(geo.v_chin[i]) - split,
        float(geo.v_nose[i]) - split,
        max(float(geo.v_lower_lip[i]) - split, 2.0),
    )
    neck = 0.45 * v_chin
    # The region that moves: nose base to below the chin, jaw side to jaw side.
    corners_u = np.array([-fw * 1.05, fw * 1.05, fw * 1.05, -fw * 1.05])
    corners_v = np.array([v_nose, v_nose, v_chin + neck + max(d_low, 0) + 2, v_chin + neck + max(d_low, 0) + 2])
    xs = cx + corners_u * ca - corners_v * sa
    ys = cy + corners_u * sa + corners_v * ca
    h, w = frame.shape[:2]
    x0, x1 = int(max(0, np.floor(xs.min()))), int(min(w, np.ceil(xs.max()) + 1))
    y0, y1 = int(max(0, np.floor(ys.min()))), int(min(h, np.ceil(ys.max()) + 1))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return frame
    hw = 0.5 * W

    def fields(gy: np.ndarray, gx: np.ndarray) -> dict:
        """The warp at the pixels (gx, gy): where each samples from, and the gap."""
        dx, dy = gx - cx, gy - cy
        u = dx * ca + dy * sa
        v = -dx * sa + dy * ca
        lens = np.clip(1 - (u / hw) ** 2, 0, 1) ** 0.9  # the lips part most in the middle
        jaw = 1 - _smoothstep(0.55 * fw, fw, np.abs(u))  # the whole jaw drops
        below = v >= 0
        t = _smoothstep(v_lip, v_chin, v)
        fall = 1 - _smoothstep(v_chin, v_chin + neck, v)
        shift_low = d_low * (lens * (1 - t) + jaw * t) * fall
        rise = 1 - _smoothstep(0, -v_nose, -v)
        shift_up = d_up * lens * rise
        src_v = np.where(below, v - shift_low, v + shift_up)
        # Pixels that fall between the parted lips show the mouth interior.
        gap = np.where(below, shift_low - v, v + shift_up)  # > 0 inside the gap
        src_v = np.where(below, np.maximum(src_v, 0.5), np.minimum(src_v, -0.5))
        src_u = u
        if abs(rounding) >= 0.05:
            # Rounded lips pull the corners in; spread lips push them out.
            band = np.exp(-((v / max(v_lip, 2.0)) ** 2)) * (1 - _smoothstep(hw, 1.6 * hw, np.abs(u)))
            src_u = u * (1 + 0.14 * rounding * band)
        # Displacement in image axes (0 at the region's edges).
        du, dv = src_u - u, src_v - v
        return {
            "v": v,
            "lens": lens,
            "below": below,
            "shift_up": shift_up,
            "gap": gap,
            "disp_x": (du * ca - dv * sa).astype(np.float32),
            "disp_y": (du * sa + dv * ca).astype(np.float32),
        }

    # The displacement is smooth: computed on every other pixel of a large region, then
    # scaled up (a face filling a portrait frame would otherwise cost more than decoding it).
    step = 2 if (x1 - x0) * (y1 - y0) > COARSE_AREA else 1
    coarse = fields(*np.mgrid[y0:y1:step, x0:x1:step].astype(np.float32))
    disp_x, disp_y = coarse["disp_x"], coarse["disp_y"]
    if step > 1:
        disp_x = cv2.resize(disp_x, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        disp_y = cv2.resize(disp_y, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    grid_y, grid_x = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float32)
    region = frame[y0:y1, x0:x1]
    warped = cv2.remap(region, grid_x + disp_x, grid_y + disp_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    # The mouth's interior, at full resolution where the lips part (a small box).
    inside = (coarse["gap"] > -2 * step) & (coarse["lens"] > 0)
    if inside.any():
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        ry0, ry1 = max(0, rows[0] * step - 2), min(y1 - y0, (rows[-1] + 1) * step + 2)
        rx0, rx1 = max(0, cols[0] * step - 2), min(x1 - x0, (cols[-1] + 1) * step + 2)
        box = fields(*np.mgrid[y0 + ry0 : y0 + ry1, x0 + rx0 : x0 + rx1].astype(np.float32))
        _paint_interior(warped[ry0:ry1, rx0:rx1], box, geo, W, delta, d_low, d_up)
    frame[y0:y1, x0:x1] = warped
    return frame
