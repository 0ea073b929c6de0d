"""The avatar's own mouths, indexed by shape, and the choice of one per frame.

Every frame of the avatar's video is described from its landmarks in face coordinates
(origin between the eyes, x along the eye line, 1 = the distance between the outer eye
corners): the inner-lip opening, the mouth's width, the head pose (where the nose tip
sits) and, from the pixels, how much of the gap between the lips shows teeth. The lower
face of each frame is kept as a small JPEG, so any frame's mouth can be pasted onto any
other frame (mouth_blend).

For a stretch of speech the wanted shapes are mapped onto the range this person's mouth
actually spans in the video, and one source frame is chosen per output frame by a Viterbi
search: a matching cost (shape, pose) plus a switching cost, free when the source simply
plays on (frame j then j+1, real motion) and small when it holds, so near-identical
choices do not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

EYE_OUTER_LEFT, EYE_OUTER_RIGHT = 33, 263
NOSE_TIP = 1
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
# Inner-lip pairs (upper, lower) across the middle of the mouth.
INNER_PAIRS = ((13, 14), (82, 87), (312, 317), (81, 178), (311, 402))
OUTER_LIP = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
INNER_LIP = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
LIPS = OUTER_LIP + INNER_LIP
# The lower face: the jaw line from cheek to cheek, and points between nose and upper lip.
JAW_LINE = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361]
NOSE_BASE_ROW = [203, 98, 97, 2, 326, 327, 423]
LOWER_FACE = JAW_LINE + NOSE_BASE_ROW
# Points that place one frame's mouth on another: the nose base and the top of the upper
# lip (which moves little in speech) say where the mouth sits in this pose, better than
# the skull alone (the lips are nearer the camera than the eyes: a turned or nodding head
# moves them differently); the eyes steady the rotation and scale.
ANCHOR_POINTS = [33, 263, 2, 98, 327, 0, 37, 267, 164]
ANCHOR_WEIGHTS = np.array([1, 1, 1, 1, 1, 5, 5, 5, 2], np.float64)

# A video whose mouth opening varies less than this (share of the mouth's width, p95-p5)
# never shows the person talking: the warp does the work instead.
MIN_TALKING_RANGE = 0.08
CROP_JPEG_QUALITY = 95
# At most this many frames are kept (a long upload: evenly spaced runs of frames).
MAX_BANK_FRAMES = 1500
RUN_LENGTH = 25

# Curve values below this are lips that meet: in speech they touch between most syllables,
# not only on p, b and m (with 0.05, the lips of the fixtures' speakers met in under 5 % of
# the frames spoken, and the range they showed fell to 0.66x their own).
LIPS_MEET = 0.13

# Viterbi costs (in units of squared standard deviations).
OPENING_SD = 0.012  # face units (about 2 % of a mouth width)
WIDTH_SD = 0.05
POSE_SD = 0.035
HOLD_COST = 0.25
SWITCH_COST = 2.0
LIPS_STEP_SD = 0.01  # face units: a jump of the lips' outline this size costs 1 more
CANDIDATES = 24
FOLLOW_BEST = 8
KEEP_OWN_BONUS = 0.5  # showing the frame as it is needs no paste


def eye_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the point between the outer eye corners, their distance, and the unit axes
    along the eye line and down the face (face coordinates, in which lips are measured)."""
    left, right = landmarks[:, EYE_OUTER_LEFT], landmarks[:, EYE_OUTER_RIGHT]
    iod = np.maximum(np.linalg.norm(right - left, axis=1), 1e-6)
    ex = (right - left) / iod[:, None]
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)
    return (left + right) / 2, iod, ex, ey


@dataclass
class ShapeFeatures:
    opening: np.ndarray  # (N,) inner-lip gap, face units
    width: np.ndarray  # (N,) corner to corner, face units
    pose: np.ndarray  # (N,2) nose tip in face coordinates
    mouth_width_px: np.ndarray  # (N,)
    lips: np.ndarray  # (N,40,2) the lips' outlines in face coordinates

    @classmethod
    def from_landmarks(cls, lm: np.ndarray) -> ShapeFeatures:
        lm = lm.astype(np.float64)
        mid, iod, ex, ey = eye_axes(lm)
        gaps = [((lm[:, b] - lm[:, a]) * ey).sum(axis=1) for a, b in INNER_PAIRS]
        opening = np.maximum(np.mean(gaps[:3], axis=0), 0) / iod
        mouth = lm[:, MOUTH_RIGHT] - lm[:, MOUTH_LEFT]
        width = np.linalg.norm(mouth, axis=1) / iod
        nose = lm[:, NOSE_TIP] - mid
        pose = np.stack([(nose * ex).sum(axis=1), (nose * ey).sum(axis=1)], axis=1) / iod[:, None]
        # The lips where pasting puts them: relative to the anchor points (the same
        # weighted similarity as mouth_blend), so a jump between two choices is measured
        # as the viewer will see it.
        rel = lm - mid[:, None, :]
        face = np.stack([(rel * ex[:, None]).sum(2), (rel * ey[:, None]).sum(2)], axis=2) / iod[:, None, None]
        reference = np.median(face[:, ANCHOR_POINTS], axis=0)
        w = ANCHOR_WEIGHTS / ANCHOR_WEIGHTS.sum()
        lips = np.empty((len(lm), len(LIPS), 2))
        ref_c = (reference * w[:, None]).sum(0)
        r = reference - ref_c
        for i in range(len(lm)):
            src = face[i, ANCHOR_POINTS]
            c = (src * w[:, None]).sum(0)
            d = src - c
            a = (w * (d[:, 0] * r[:, 0] + d[:, 1] * r[:, 1])).sum()
            b = (w * (d[:, 0] * r[:, 1] - d[:, 1] * r[:, 0])).sum()
            norm = (w * (d**2).sum(1)).sum()
            rot = np.array([[a, -b], [b, a]]) / norm
            lips[i] = (face[i, LIPS] - c) @ rot.T + ref_c
        return cls(opening, width, pose, np.linalg.norm(mouth, axis=1), lips)

    def subset(self, keep: np.ndarray) -> ShapeFeatures:
        return ShapeFeatures(*(getattr(self, f)[keep] for f in ("opening", "width", "pose", "mouth_width_px", "lips")))


def lower_face_box(lm: np.ndarray, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    pts = lm[LOWER_FACE]
    x0, y0 = pts.min(axis=0) - margin
    x1, y1 = pts.max(axis=0) + margin
    y1 += margin  # room below the chin: it moves down when the jaw opens
    return (
        int(max(0, np.floor(x0))),
        int(max(0, np.floor(y0))),
        int(min(width, np.ceil(x1))),
        int(min(height, np.ceil(y1))),
    )


def _teeth_share(crop: np.ndarray, lm_crop: np.ndarray) -> float:
    """Share of the gap between the lips that is bright and colourless (teeth)."""
    outer = lm_crop[OUTER_LIP]
    x0, y0 = np.maximum(np.floor(outer.min(axis=0)).astype(int) - 8, 0)
    x1, y1 = np.ceil(outer.max(axis=0)).astype(int) + 8
    patch = crop[y0:y1, x0:x1]
    if patch.size == 0:
        return 0.0
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm_crop[INNER_LIP] - (x0, y0)).astype(np.int32)], 1)
    if mask.sum() < 6:
        return 0.0
    lab = cv2.cvtColor(patch, cv2.COLOR_BGR2LAB).astype(np.float32)
    inside = lab[mask > 0]
    lips = np.zeros_like(mask)
    cv2.fillPoly(lips, [np.round(outer - (x0, y0)).astype(np.int32)], 1)
    skin = lab[lips == 0]  # around the lips
    ref_l = float(np.median(skin[:, 0])) if len(skin) else 150.0
    chroma = np.hypot(inside[:, 1] - 128, inside[:, 2] - 128)
    teeth = (inside[:, 0] > 0.85 * ref_l) & (chroma < 22)
    return float(teeth.mean())


@dataclass
class MouthBank:
    """Source mouths: features for every kept frame and its lower face as a JPEG."""

    frames: np.ndarray  # (M,) avatar frame index of each entry
    features: ShapeFeatures  # of the M entries
    teeth: np.ndarray  # (M,)
    crops: list[bytes]
    origins: np.ndarray  # (M,2) crop's top-left in its frame
    landmarks: np.ndarray  # (M,478,2) in crop coordinates
    opening_lo: float  # closed lips (face units)
    opening_hi: float  # the widest this person opens while talking (1 % of frames wider)
    width_mid: float
    width_spread: float
    talking_range: float  # p95 - p5 of opening / mouth width over the video

    @property
    def usable(self) -> bool:
        return self.talking_range >= MIN_TALKING_RANGE

    @classmethod
    def build(cls, assets, landmarks: np.ndarray, features: ShapeFeatures, *, enabled: bool = True) -> MouthBank:
        """Index the frames of `assets` (`source_jpegs`: the frames as uploaded, when the
        assets' own were already given closed mouths). `enabled=False`: an empty bank."""
        n = assets.frame_count
        ratio = features.opening / np.maximum(features.width, 1e-6)
        talking_range = float(np.percentile(ratio, 95) - np.percentile(ratio, 5))
        keep = np.arange(n)
        if n > MAX_BANK_FRAMES:
            runs = MAX_BANK_FRAMES // RUN_LENGTH
            starts = np.linspace(0, n - RUN_LENGTH, runs).astype(int)
            keep = np.unique(np.concatenate([np.arange(s, s + RUN_LENGTH) for s in starts]))
        if talking_range < MIN_TALKING_RANGE or not enabled:
            keep = keep[:0]  # nothing worth pasting: the warp does the work
        w, h = assets.size
        crops, origins, lms, teeth = [], [], [], []
        params = [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY]
        source = getattr(assets, "viseme_source_jpegs", None) or assets.jpeg_frames
        for i in keep:
            image = cv2.imdecode(np.frombuffer(source[int(i)], np.uint8), cv2.IMREAD_COLOR)
            lm = landmarks[i]
            x0, y0, x1, y1 = lower_face_box(lm, w, h, 0.35 * float(features.mouth_width_px[i]))
            crop = image[y0:y1, x0:x1]
            ok, buf = cv2.imencode(".jpg", crop, params)
            crops.append(buf.tobytes())
            origins.append((x0, y0))
            lms.append(lm - (x0, y0))
            teeth.append(_teeth_share(crop, lm - (x0, y0)))
        sub = features.subset(keep)
        op = features.opening
        width = features.width
        return cls(
            frames=keep,
            features=sub,
            teeth=np.array(teeth, np.float64),
            crops=crops,
            origins=np.array(origins, np.float64).reshape(-1, 2),
            landmarks=np.array(lms, np.float64).reshape(-1, landmarks.shape[1], 2),
            opening_lo=float(np.percentile(op, 3)),
            opening_hi=float(np.percentile(op, 99)),
            width_mid=float(np.median(width)),
            width_spread=float(max((np.percentile(width, 90) - np.percentile(width, 10)) / 2, 0.02)),
            talking_range=talking_range if enabled else 0.0,
        )

    def crop(self, entry: int) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(self.crops[entry], np.uint8), cv2.IMREAD_COLOR)

    def wanted(self, opening: np.ndarray, rounding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Wanted (opening, width) in face units for curve values 0..1 and -1..1."""
        # The curves' faintest openings (< LIPS_MEET) are lips that touch; their widest
        # (> 90 %) this person's widest: real speech swings between the two.
        stretched = np.clip((np.asarray(opening) - LIPS_MEET) / (0.9 - LIPS_MEET), 0, 1)
        o = self.opening_lo + stretched * (self.opening_hi - self.opening_lo)
        w = self.width_mid - np.clip(rounding, -1, 1) * self.width_spread
        return o, w

    def match_cost(self, want_o: float, want_w: float, want_teeth: float, pose: np.ndarray) -> np.ndarray:
        """(M,) cost of each entry for one wanted shape on a target frame of pose `pose`."""
        f = self.features
        cost = ((f.opening - want_o) / OPENING_SD) ** 2
        cost += 0.35 * ((f.width - want_w) / WIDTH_SD) ** 2
        cost += 1.5 * want_teeth * (1 - np.minimum(self.teeth * 3, 1))
        cost += ((f.pose - pose) ** 2).sum(axis=1) / POSE_SD**2
        return cost

    def plan(
        self,
        target_frames: np.ndarray,
        target_features: ShapeFeatures,
        want_o: np.ndarray,
        want_w: np.ndarray,
        want_teeth: np.ndarray,
        own_teeth: np.ndarray | None = None,
    ) -> np.ndarray:
        """Bank entry per output frame, or -1 to show the target frame as it is.

        Viterbi over the best-matching entries of each frame (plus the frame's own mouth
        and the successors of the previous frame's best paths): switching costs the more,
        the more the lips' outline jumps, so the chosen mouths move smoothly."""
        t_count, m = len(target_frames), len(self.frames)
        if m == 0 or t_count == 0:
            return np.full(t_count, -1)
        pose_t = target_features.pose[target_frames]

        def cost(k: int) -> np.ndarray:  # row by row: a long idle loop never needs (T, M) at once
            return self.match_cost(float(want_o[k]), float(want_w[k]), float(want_teeth[k]), pose_t[k])

        own_o = target_features.opening[target_frames]
        own_w = target_features.width[target_frames]
        own = ((own_o - want_o) / OPENING_SD) ** 2 + 0.35 * ((own_w - want_w) / WIDTH_SD) ** 2 - KEEP_OWN_BONUS
        if own_teeth is not None:
            own += 1.5 * want_teeth * (1 - np.minimum(own_teeth[target_frames] * 3, 1))
        successor = np.full(m, -1)
        follows = np.flatnonzero(self.frames[1:] == self.frames[:-1] + 1)
        successor[follows] = follows + 1
        k_best = min(CANDIDATES, m)

        def lips_of(states: np.ndarray, k: int) -> np.ndarray:
            out = np.empty((len(states),) + self.features.lips.shape[1:])
            bank = states >= 0
            out[bank] = self.features.lips[states[bank]]
            out[~bank] = target_features.lips[target_frames[k]]
            return out

        def unary(states: np.ndarray, k: int, row: np.ndarray) -> np.ndarray:
            return np.where(states >= 0, row[np.maximum(states, 0)], own[k])

        row = cost(0)
        states = np.append(np.argpartition(row, k_best - 1)[:k_best], -1)
        total = unary(states, 0, row)
        history = [(states, None)]
        for k in range(1, t_count):
            order = np.argsort(total)[:FOLLOW_BEST]
            carried = successor[np.maximum(states[order], 0)]
            carried = carried[(states[order] >= 0) & (carried >= 0)]
            row = cost(k)
            new = np.unique(np.concatenate([np.argpartition(row, k_best - 1)[:k_best], carried]))
            new = np.append(new, -1)
            prev_lips, new_lips = lips_of(states, k - 1), lips_of(new, k)
            dist = np.sqrt(((prev_lips[:, None, ::3] - new_lips[None, :, ::3]) ** 2).sum(-1).mean(-1))
            trans = SWITCH_COST + (dist / LIPS_STEP_SD) ** 2
            same = states[:, None] == new[None, :]
            trans[same] = HOLD_COST
            plays_on = (states[:, None] >= 0) & (successor[np.maximum(states, 0)][:, None] == new[None, :])
            trans[plays_on] = (dist[plays_on] / (2 * LIPS_STEP_SD)) ** 2
            trans[(states[:, None] < 0) & (new[None, :] < 0)] = 0.0  # the own frame plays on
            step = total[:, None] + trans
            back = np.argmin(step, axis=0)
            total = step[back, np.arange(len(new))] + unary(new, k, row)
            history.append((new, back))
            states = new
        path = np.empty(t_count, np.int64)
        pos = int(np.argmin(total))
        for k in range(t_count - 1, -1, -1):
            states_k, back = history[k]
            path[k] = states_k[pos]
            if back is not None:
                pos = int(back[pos])
        return path
