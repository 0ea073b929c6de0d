"""Face finding and landmark tracking on every frame (MediaPipe face mesh, bundled model).

The tracker runs on a downscaled copy of each frame (tracking mode, so consecutive frames
reuse the previous face region) and returns landmarks in full-frame pixels. `FaceTrack`
turns the per-frame results into what the engines need: gap-filled landmarks, smoothed
face boxes, square crop boxes and mouth geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

# The face-mesh model ships inside the mediapipe wheel; silence its C++ start-up chatter.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TRACK_MAX_SIDE = 640
N_LANDMARKS = 478
# MediaPipe face-mesh indices used for mouth geometry.
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
LIP_INNER_TOP, LIP_INNER_BOTTOM = 13, 14
LIP_OUTER_TOP, LIP_OUTER_BOTTOM = 0, 17
NOSE_TIP, CHIN = 1, 152
EYE_OUTER_LEFT, EYE_OUTER_RIGHT = 33, 263


class FaceTracker:
    """Per-frame landmarks of the most prominent face, plus how many faces were seen."""

    def __init__(self, max_side: int = TRACK_MAX_SIDE):
        import mediapipe as mp

        self.max_side = max_side
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=2,
            refine_landmarks=True,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def process(self, frame_bgr: np.ndarray) -> tuple[np.ndarray | None, int]:
        h, w = frame_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = (
            frame_bgr
            if scale == 1.0
            else cv2.resize(frame_bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        result = self._mesh.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        faces = result.multi_face_landmarks or []
        if not faces:
            return None, 0
        best, best_area = None, -1.0
        for face in faces:
            pts = np.array([(p.x * w, p.y * h) for p in face.landmark], dtype=np.float32)
            span = pts.max(axis=0) - pts.min(axis=0)
            area = float(span[0] * span[1])
            if area > best_area:
                best, best_area = pts, area
        return best, len(faces)


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 with edge padding (no phase lag)."""
    if window <= 1 or len(values) < 2:
        return values.copy()
    pad = window // 2
    padded = np.concatenate([np.repeat(values[:1], pad, 0), values, np.repeat(values[-1:], pad, 0)])
    kernel = np.ones(window) / window
    out = np.empty_like(values, dtype=np.float64)
    flat = padded.reshape(len(padded), -1)
    res = out.reshape(len(values), -1)
    for j in range(flat.shape[1]):
        res[:, j] = np.convolve(flat[:, j], kernel, mode="valid")
    return out.astype(values.dtype)


def _fill_gaps(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation of missing frames from the nearest tracked ones."""
    idx = np.flatnonzero(found)
    out = landmarks.copy()
    if len(idx) == 0 or len(idx) == len(found):
        return out
    flat = out.reshape(len(out), -1)
    all_idx = np.arange(len(found))
    for j in range(flat.shape[1]):
        flat[:, j] = np.interp(all_idx, idx, flat[idx, j])
    return out


@dataclass
class FaceTrack:
    landmarks: np.ndarray  # (N, 478, 2) float32, full-frame pixels, gaps filled
    found: np.ndarray  # (N,) bool: a face was tracked in that frame
    face_counts: np.ndarray  # (N,) int: how many faces the detector saw
    boxes: np.ndarray  # (N, 4) x1,y1,x2,y2 of the landmarks, smoothed
    crop_boxes: np.ndarray  # (N, 4) square crop around the face, smoothed, int
    mouth_center: np.ndarray  # (N, 2)
    mouth_width: np.ndarray  # (N,)
    mouth_opening: np.ndarray  # (N,) inner-lip gap
    jaw_length: np.ndarray  # (N,) nose tip to chin

    @classmethod
    def build(
        cls, per_frame: list[np.ndarray | None], counts: list[int], width: int, height: int, smooth_window: int = 5
    ) -> FaceTrack:
        n = len(per_frame)
        found = np.array([p is not None for p in per_frame], dtype=bool)
        raw = np.zeros((n, N_LANDMARKS, 2), dtype=np.float32)
        for i, pts in enumerate(per_frame):
            if pts is not None:
                raw[i] = pts
        landmarks = _fill_gaps(raw, found)
        boxes = np.concatenate([landmarks.min(axis=1), landmarks.max(axis=1)], axis=1)
        boxes = _moving_average(boxes.astype(np.float64), smooth_window).astype(np.float32)
        crop_boxes = cls._square_crops(boxes, width, height, smooth_window)
        left, right = landmarks[:, MOUTH_LEFT], landmarks[:, MOUTH_RIGHT]
        mouth_pts = landmarks[:, [MOUTH_LEFT, MOUTH_RIGHT, LIP_OUTER_TOP, LIP_OUTER_BOTTOM]]
        return cls(
            landmarks=landmarks,
            found=found,
            face_counts=np.array(counts, dtype=np.int8),
            boxes=boxes,
            crop_boxes=crop_boxes,
            mouth_center=mouth_pts.mean(axis=1),
            mouth_width=np.linalg.norm(right - left, axis=1),
            mouth_opening=np.linalg.norm(landmarks[:, LIP_INNER_BOTTOM] - landmarks[:, LIP_INNER_TOP], axis=1),
            jaw_length=np.linalg.norm(landmarks[:, CHIN] - landmarks[:, NOSE_TIP], axis=1),
        )

    @staticmethod
    def _square_crops(boxes: np.ndarray, width: int, height: int, window: int) -> np.ndarray:
        # A square around the face with room for the chin and jaw movement, kept in frame.
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + 0.05 * (boxes[:, 3] - boxes[:, 1])
        side = 1.25 * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        side = _moving_average(side[:, None].astype(np.float64), window * 3)[:, 0]
        side = np.minimum(side, min(width, height))
        x1 = np.clip(cx - side / 2, 0, width - side)
        y1 = np.clip(cy - side / 2, 0, height - side)
        out = np.stack([x1, y1, x1 + side, y1 + side], axis=1)
        return np.round(out).astype(np.int32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "landmarks": self.landmarks.astype(np.float32),
            "found": self.found,
            "face_counts": self.face_counts,
            "boxes": self.boxes,
            "crop_boxes": self.crop_boxes,
            "mouth_center": self.mouth_center.astype(np.float32),
            "mouth_width": self.mouth_width.astype(np.float32),
            "mouth_opening": self.mouth_opening.astype(np.float32),
            "jaw_length": self.jaw_length.astype(np.float32),
        }


# The track's arrays measured in pixels, by how they scale with the frame.
_TRACK_POINTS = ("landmarks", "mouth_center")  # (..., 2) x, y
_TRACK_BOXES = ("boxes", "crop_boxes")  # (N, 4) x1, y1, x2, y2
_TRACK_LENGTHS = ("mouth_width", "mouth_opening", "jaw_length")


def track_scaled(track: dict[str, np.ndarray], sx: float, sy: float) -> dict[str, np.ndarray]:
    """The face track (FaceTrack.arrays()) of the same video with its frames scaled by
    (sx, sy); what is not in pixels (found, face counts) is kept as it is."""
    out = dict(track)
    for key in _TRACK_POINTS:
        if key in track:
            out[key] = (track[key] * np.array([sx, sy])).astype(track[key].dtype)
    for key in _TRACK_BOXES:
        if key in track:
            scaled = track[key] * np.array([sx, sy, sx, sy])
            out[key] = (np.round(scaled) if track[key].dtype.kind == "i" else scaled).astype(track[key].dtype)
    for key in _TRACK_LENGTHS:
        if key in track:
            out[key] = (track[key] * ((sx + sy) / 2)).astype(track[key].dtype)
    return out


def sharpness(image_bgr: np.ndarray, box) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = image_bgr[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)]
    if patch.size == 0:
        return 0.0
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
