"""Preprocessing a real face clip into the assets the engines use (no worker needed)."""

import json

import av
import cv2
import numpy as np
import pytest

from lipsync_worker.asset_pipeline import PreprocessError, preprocess_video
from tests import media


def _frames(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="bgr24") for f in container.decode(stream)], float(stream.average_rate)


def test_assets_of_a_25_fps_clip(face_video, tmp_path):
    stages = []
    result = preprocess_video(
        face_video,
        tmp_path,
        expected_seconds=2.0,
        progress=lambda stage, percent, message: stages.append((stage, percent)),
    )
    assert result.frame_count == 50 and (result.width, result.height) == (320, 384)
    assert result.face_ratio > 0.95
    percents = [p for _, p in stages]
    assert percents == sorted(percents) and percents[-1] >= 95
    assert {"tracking", "cropping", "preview"} <= {s for s, _ in stages}

    track = np.load(tmp_path / "face_track.npz")
    assert track["landmarks"].shape == (50, 478, 2)
    assert track["found"].all()
    # The face box sits on the astronaut's face and follows the head motion smoothly.
    boxes = track["boxes"]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.all(np.abs(np.diff(centres, axis=0)) < 6)
    assert 25 < np.median(track["mouth_width"]) < 120
    frames, fps = _frames(tmp_path / "frames.mp4")
    assert len(frames) == 50 and fps == 25
    crops, _ = _frames(tmp_path / "face_crops.mp4")
    assert len(crops) == 50 and crops[0].shape == (256, 256, 3)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["frame_count"] == 50 and meta["fps"] == 25
    preview = cv2.imread(str(tmp_path / "preview.png"))
    assert preview.shape == (384, 320, 3)


def test_other_frame_rates_are_resampled_to_25_fps(tmp_path):
    clip = media.write_video(tmp_path / "thirty.mp4", media.face_frames(2.0, fps=30), fps=30)
    result = preprocess_video(clip, tmp_path / "out", expected_seconds=2.0)
    assert result.frame_count == 50
    frames, fps = _frames(tmp_path / "out" / "frames.mp4")
    assert len(frames) == 50 and fps == 25


def test_a_video_without_a_face_is_refused_with_the_reason(noface_video, tmp_path):
    with pytest.raises(PreprocessError, match="No face was found"):
        preprocess_video(noface_video, tmp_path, expected_seconds=2.0)


def test_a_video_with_two_people_is_refused(tmp_path):
    pairs = [np.hstack([f, f]) for f in media.face_frames(1.2, size=(256, 320))]
    clip = media.write_video(tmp_path / "two.mp4", pairs)
    with pytest.raises(PreprocessError, match="More than one face"):
        preprocess_video(clip, tmp_path / "out", expected_seconds=1.2)
