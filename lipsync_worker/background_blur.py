"""The avatar's background blur (`avatar_blur`): the person kept sharp, the rest blurred.

Person segmentation is MediaPipe's selfie segmentation (the general 256×256 model, which
ships inside the mediapipe wheel under `mediapipe/modules/selfie_segmentation/`). It runs
once per frame at preprocessing, so the preview, renders and live sessions all show the
blurred frames and pay nothing for it.

Per frame: the model's person probability, at a small working size; a temporal filter that
follows real motion at once but damps the model's frame-to-frame noise (so the edge does not
flicker); a ramp and a feather for a soft edge; the face (its landmarks' hull) forced to
"person", so what the lip-sync engines edit stays exactly as filmed; and the background
blurred by normalised convolution weighted to the background only, so the person's colours
do not bleed into it as a halo. A frame where no person is found is left as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Masks are computed at this long side and the blurred background at half of it, then
# scaled up: the model itself sees 256×256, and a blurred background has no detail to lose.
WORK_MAX_SIDE = 320
BACKGROUND_MAX_SIDE = 160
# Background blur: Gaussian sigma as a fraction of the long side (at 1080p about 24 px).
BLUR_SIGMA_FRACTION = 0.0125
# Soft edge: feather of the mask, in working pixels.
EDGE_FEATHER_SIGMA = 1.5
# Person probability mapped to "keep": below LOW is background, above HIGH is person.
PROBABILITY_LOW, PROBABILITY_HIGH = 0.2, 0.7
# Temporal filter: the weight of the new frame grows with how much it differs from the
# filtered mask, so noise (small differences) is averaged and motion (large ones) followed.
SMOOTHING_BASE, SMOOTHING_GAIN = 0.15, 1.5
# Less than this share of the frame seen as a person: no person in this frame.
MIN_PERSON_FRACTION = 0.01
# The face (the hull of its landmarks) kept exactly, grown by this share from its centre.
FACE_MARGIN = 0.08


@dataclass
class BlurStats:
    """What the blur did over a video (written to the assets' meta.json)."""

    frames: int = 0
    blurred: int = 0
    without_person: int = 0

    def as_dict(self) -> dict:
        return {"frames": self.frames, "blurred": self.blurred, "frames_without_person": self.without_person}


class PersonSegmenter:
    """MediaPipe selfie segmentation (general model, bundled): person probability per pixel."""

    def __init__(self):
        import mediapipe as mp

        self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def probability(self, image_bgr: np.ndarray) -> np.ndarray:
        """float32 in [0, 1], the size of `image_bgr`."""
        result = self._model.process(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        return np.asarray(result.segmentation_mask, dtype=np.float32)

    def close(self) -> None:
        self._model.close()


class BackgroundBlur:
    """Blurs the background of consecutive frames of one video (the temporal filter keeps
    state: one instance per video, frames in order)."""

    def __init__(self, segmenter: PersonSegmenter | None = None):
        self._segmenter = segmenter or PersonSegmenter()
        self._mask: np.ndarray | None = None  # the filtered person probability, working size
        self.probability: np.ndarray | None = None  # the model's, for the last frame (unfiltered)
        self._face_outline: np.ndarray | None = None  # the face's hull, full-frame pixels
        self.stats = BlurStats()

    def close(self) -> None:
        self._segmenter.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def mask(self) -> np.ndarray | None:
        """The temporally filtered person probability of the last frame with a person
        (working size), for measuring how steady the edge is."""
        return self._mask

    def apply(self, frame: np.ndarray, face_landmarks: np.ndarray | None = None) -> np.ndarray:
        """The frame with its background blurred (a new array), or `frame` itself when no
        person is found in it. The face (the hull of `face_landmarks`, full-frame pixels;
        None: the last face given) is kept exactly as it is."""
        self.stats.frames += 1
        if face_landmarks is not None:
            hull = cv2.convexHull(np.asarray(face_landmarks, dtype=np.float32)).reshape(-1, 2)
            centre = hull.mean(axis=0)
            self._face_outline = centre + (hull - centre) * (1.0 + FACE_MARGIN)
        h, w = frame.shape[:2]
        scale = min(1.0, WORK_MAX_SIDE / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else frame
        probability = self.probability = self._segmenter.probability(small)
        if float((probability > 0.5).mean()) < MIN_PERSON_FRACTION:
            self.stats.without_person += 1
            return frame  # nothing to keep sharp: blurring all of it would hide the tutor
        self._mask = self._filtered(probability)
        keep = self._keep_mask(scale)
        background = self._background(small, keep)
        self.stats.blurred += 1
        # Full-size composite: where keep is exactly 1 the frame's own pixels come out unchanged.
        keep_full = cv2.resize(keep, (w, h), interpolation=cv2.INTER_LINEAR)
        background_full = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(frame, background_full, keep_full, 1.0 - keep_full)

    def _filtered(self, probability: np.ndarray) -> np.ndarray:
        previous = self._mask
        if previous is None or previous.shape != probability.shape:
            return probability
        difference = np.abs(probability - previous)
        weight = np.minimum(1.0, SMOOTHING_BASE + SMOOTHING_GAIN * difference)
        return previous + weight * (probability - previous)

    def _keep_mask(self, scale: float) -> np.ndarray:
        """1 on the person and the face, 0 on the background, soft in between."""
        keep = np.clip((self._mask - PROBABILITY_LOW) / (PROBABILITY_HIGH - PROBABILITY_LOW), 0.0, 1.0)
        keep = cv2.GaussianBlur(keep, (0, 0), EDGE_FEATHER_SIGMA)
        if self._face_outline is not None:
            face = np.zeros_like(keep)
            outline = np.round(self._face_outline * scale).astype(np.int32)
            cv2.fillConvexPoly(face, outline, 1.0, lineType=cv2.LINE_8)
            # A working pixel more all round, so the bilinear scale-up keeps exactly 1 over
            # the whole face at full size; feathered outside it only.
            face = cv2.dilate(face, np.ones((3, 3), np.uint8))
            feathered = cv2.GaussianBlur(face, (0, 0), EDGE_FEATHER_SIGMA * 2)
            keep = np.maximum(keep, np.maximum(face, feathered))
        return keep

    def _background(self, small: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The frame blurred from its background pixels only (normalised convolution), at
        BACKGROUND_MAX_SIDE."""
        h, w = small.shape[:2]
        factor = min(1.0, BACKGROUND_MAX_SIDE / max(h, w))
        if factor < 1.0:
            size = (max(1, round(w * factor)), max(1, round(h * factor)))
            small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
            keep = cv2.resize(keep, size, interpolation=cv2.INTER_AREA)
        sigma = max(1.0, BLUR_SIGMA_FRACTION * max(h, w) * factor)
        weight = (1.0 - keep) ** 2  # the person's own edge pixels barely count
        image = small.astype(np.float32)
        numerator = cv2.GaussianBlur(image * weight[..., None], (0, 0), sigma)
        denominator = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
        plain = cv2.GaussianBlur(image, (0, 0), sigma)
        # Deep inside the person there is no background nearby; the plain blur stands in
        # there (it is hidden by the mask anyway).
        trust = np.clip(denominator / 0.05, 0.0, 1.0)
        blurred = numerator / np.maximum(denominator, 1e-4)
        out = trust * blurred + (1.0 - trust) * plain
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
