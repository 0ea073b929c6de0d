"""Turn an uploaded video into avatar assets (pure pipeline: files in, files out).

Pass 1 decodes at 25 fps, tracks the face on every frame and writes the normalised video
(with `background_blur`, each frame's background blurred first: `background_blur.py`);
pass 2 re-reads that video to cut the smoothed face crops and pick the preview frame, so
the crops, the preview, renders and live sessions all show what pass 1 wrote.
The caller (`preprocess_job.preprocess_avatar`) moves the files into storage.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .background_blur import BackgroundBlur
from .face_tracking import FaceTrack, FaceTracker, sharpness
from .video_io import (
    TARGET_FPS,
    BackgroundVideoWriter,
    DecodeStats,
    is_normalised_candidate,
    iter_frames_at_fps,
    prefetched,
)

ASSETS_VERSION = 1
CROP_SIZE = 256
PREVIEW_MAX_SIDE = 720

FRAMES_FILE = "frames.mp4"
CROPS_FILE = "face_crops.mp4"
TRACK_FILE = "face_track.npz"
META_FILE = "meta.json"
PREVIEW_FILE = "preview.png"

ProgressCallback = Callable[[str, int, str], None]

logger = logging.getLogger(__name__)


class PreprocessError(Exception):
    """The video cannot become an avatar; the message tells the admin what to change."""


@dataclass
class PreprocessResult:
    frame_count: int
    width: int
    height: int
    face_ratio: float
    files: dict[str, Path] = field(default_factory=dict)
    # With background blur: frames, blurred, frames_without_person (also in meta.json).
    blur: dict | None = None


def _no_progress(stage: str, percent: int, message: str) -> None:
    pass


def _close_quietly(writer: BackgroundVideoWriter) -> None:
    try:
        writer.close()
    except Exception:
        logger.debug("Closing the frames writer after a failure", exc_info=True)


def preprocess_video(
    src: str | Path,
    out_dir: str | Path,
    *,
    expected_seconds: float,
    min_face_ratio: float = 0.6,
    background_blur: bool = False,
    progress: ProgressCallback = _no_progress,
) -> PreprocessResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    expected_frames = max(1, math.ceil(expected_seconds * TARGET_FPS))

    # Pass 1: decode, track, write the normalised 25 fps video (or keep the source as it
    # is when it already is one, which saves re-encoding the common case; never with the
    # blur, whose frames differ from the source's).
    progress("tracking", 1, "Finding the face")
    per_frame: list[np.ndarray | None] = []
    counts: list[int] = []
    copy_source = not background_blur and is_normalised_candidate(str(src))
    stats = DecodeStats()
    writer = None
    width = height = 0
    last_percent = -1
    doing = "Tracking the face and blurring the background" if background_blur else "Tracking the face"
    try:
        with FaceTracker() as tracker, BackgroundBlur() if background_blur else nullcontext() as blur:
            for image in prefetched(iter_frames_at_fps(str(src), stats=stats)):
                if writer is None and not copy_source:
                    writer = BackgroundVideoWriter(str(out / FRAMES_FILE), image.shape[1], image.shape[0])
                height, width = image.shape[:2]
                landmarks, count = tracker.process(image)  # on the frame as filmed
                if writer is not None:
                    writer.write(image if blur is None else blur.apply(image, landmarks))
                per_frame.append(landmarks)
                counts.append(count)
                percent = 2 + int(70 * min(1.0, len(per_frame) / expected_frames))
                if percent != last_percent:
                    progress("tracking", percent, f"{doing}: frame {len(per_frame)} of ~{expected_frames}")
                    last_percent = percent
    except BaseException:
        if writer is not None:  # a stopped job (limit, replaced) leaves no encoder thread behind
            _close_quietly(writer)
        raise
    blur_stats = blur.stats.as_dict() if blur is not None else None
    if not per_frame:
        raise PreprocessError("The video has no frames that can be decoded.")
    if writer is not None:
        writer.close()
    elif stats.one_to_one:
        shutil.copyfile(src, out / FRAMES_FILE)
    else:
        # The source looked constant-rate but was not: encode the normalised video after all.
        with BackgroundVideoWriter(str(out / FRAMES_FILE), width, height) as late_writer:
            for image in iter_frames_at_fps(str(src)):
                late_writer.write(image)
    width, height = width - width % 2, height - height % 2
    n = len(per_frame)

    found_ratio = sum(p is not None for p in per_frame) / n
    several_ratio = sum(c >= 2 for c in counts) / n
    if found_ratio < min_face_ratio:
        raise PreprocessError(
            f"No face was found in most of the video (a face is visible in {found_ratio:.0%} of the frames, "
            f"{min_face_ratio:.0%} are needed). Upload a video where the tutor faces the camera throughout."
        )
    if several_ratio > 0.5:
        raise PreprocessError(
            f"More than one face is visible in {several_ratio:.0%} of the frames. "
            "Upload a video that shows only the tutor."
        )

    progress("smoothing", 74, "Smoothing the face track")
    track = FaceTrack.build(per_frame, counts, width, height)
    np.savez_compressed(out / TRACK_FILE, **track.arrays())

    # Pass 2: face crops for the neural engines and the preview frame.
    preview_every = max(1, n // 60)
    best_score, best_frame = -1.0, None
    last_percent = -1
    with BackgroundVideoWriter(str(out / CROPS_FILE), CROP_SIZE, CROP_SIZE) as crops:
        for i, image in enumerate(prefetched(iter_frames_at_fps(str(out / FRAMES_FILE)))):
            if i >= n:
                break
            x1, y1, x2, y2 = track.crop_boxes[i]
            crop = cv2.resize(image[y1:y2, x1:x2], (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
            crops.write(crop)
            if track.found[i] and i % preview_every == 0:
                # A sharp face with the mouth at rest makes the clearest preview.
                rest = 1.0 / (1.0 + 8.0 * track.mouth_opening[i] / max(track.mouth_width[i], 1.0))
                score = sharpness(image, track.boxes[i]) * rest
                if score > best_score:
                    best_score, best_frame = score, image
            percent = 75 + int(20 * (i + 1) / n)
            if percent != last_percent:
                progress("cropping", percent, f"Cutting face crops: frame {i + 1} of {n}")
                last_percent = percent
    if crops.frames != n:
        raise PreprocessError("The normalised video could not be read back; the upload may be damaged.")

    progress("preview", 96, "Writing the preview")
    preview = best_frame
    scale = min(1.0, PREVIEW_MAX_SIDE / max(preview.shape[:2]))
    if scale < 1.0:
        preview = cv2.resize(preview, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / PREVIEW_FILE), preview)

    meta = {
        "version": ASSETS_VERSION,
        "fps": TARGET_FPS,
        "frame_count": n,
        "width": width,
        "height": height,
        "crop_size": CROP_SIZE,
        "face_ratio": round(found_ratio, 4),
        "background_blur": blur_stats,
        "files": {"frames": FRAMES_FILE, "crops": CROPS_FILE, "track": TRACK_FILE, "preview": PREVIEW_FILE},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    files = {name: out / name for name in (FRAMES_FILE, CROPS_FILE, TRACK_FILE, META_FILE, PREVIEW_FILE)}
    return PreprocessResult(
        frame_count=n, width=width, height=height, face_ratio=found_ratio, files=files, blur=blur_stats
    )
