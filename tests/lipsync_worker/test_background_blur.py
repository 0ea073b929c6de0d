"""Background blur at preprocessing (`avatar_blur`), on real face clips through the real
pipeline and MediaPipe's bundled selfie-segmentation model (no worker needed)."""

import json

import av
import cv2
import numpy as np
import pytest
from skimage import data

from lipsync_worker.asset_pipeline import preprocess_video
from lipsync_worker.background_blur import BackgroundBlur, PersonSegmenter
from tests import media


def _frames(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _sure_background(frames):
    """Per frame, where the unblurred frame is surely background (away from the person's edge)."""
    segmenter = PersonSegmenter()
    try:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
        return [cv2.erode((segmenter.probability(f) < 0.1).astype(np.uint8), kernel).astype(bool) for f in frames]
    finally:
        segmenter.close()


def _laplacian_variance(image, region) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[region].var())


def _box_mad(a, b, box) -> float:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return float(np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2]).mean())


@pytest.fixture(scope="module")
def blurred_assets(face_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("blurred")
    result = preprocess_video(face_video, out, expected_seconds=2.0, background_blur=True)
    return out, result


def test_blur_softens_the_background_and_leaves_the_face_as_filmed(face_video, blurred_assets):
    out, result = blurred_assets
    source, blurred = _frames(face_video), _frames(out / "frames.mp4")
    assert len(blurred) == len(source) == result.frame_count == 50
    assert result.blur == {"frames": 50, "blurred": 50, "frames_without_person": 0}
    assert json.loads((out / "meta.json").read_text())["background_blur"] == result.blur

    boxes = np.load(out / "face_track.npz")["boxes"]
    ratios, face_mads, background_mads = [], [], []
    for before, after, region, box in zip(source, blurred, _sure_background(source), boxes, strict=True):
        assert region.mean() > 0.1  # the astronaut's backdrop and the shuttle
        ratios.append(_laplacian_variance(after, region) / _laplacian_variance(before, region))
        face_mads.append(_box_mad(after, before, box))
        background_mads.append(float(np.abs(after.astype(int) - before)[region].mean()))
    # The background loses most of its detail...
    assert np.median(ratios) <= 0.30 and max(ratios) <= 0.45, ratios
    # ...while the face box differs only by the H.264 re-encode (about 2/255 on this clip).
    assert max(face_mads) <= 3.5, face_mads
    assert np.mean(background_mads) > np.mean(face_mads) + 1.0


def test_crops_and_preview_come_from_the_blurred_frames(face_video, blurred_assets, tmp_path):
    out, _result = blurred_assets
    plain_out = tmp_path / "plain"
    preprocess_video(face_video, plain_out, expected_seconds=2.0, background_blur=False)
    plain_preview, blurred_preview = cv2.imread(str(plain_out / "preview.png")), cv2.imread(str(out / "preview.png"))
    region = _sure_background([plain_preview])[0]
    assert _laplacian_variance(blurred_preview, region) <= 0.4 * _laplacian_variance(plain_preview, region)
    # Each crop is cut from its (blurred) frame: the crops differ where the frames do.
    plain_crops, blurred_crops = _frames(plain_out / "face_crops.mp4"), _frames(out / "face_crops.mp4")
    assert len(blurred_crops) == len(plain_crops) == 50
    assert any(np.abs(a.astype(int) - b).max() > 40 for a, b in zip(plain_crops, blurred_crops, strict=True))


def test_frames_without_a_person_are_left_unblurred(tmp_path):
    # A lead-in of a brick wall (no person, no face) before the tutor: preprocessing succeeds
    # (the face is found in 70 % of the frames) and only the frames with the tutor are blurred.
    tutor = media.face_frames(1.4)
    height, width = tutor[0].shape[:2]
    wall = cv2.cvtColor(cv2.resize(data.brick(), (width, height)), cv2.COLOR_GRAY2BGR)
    empty = [wall.copy() for _ in range(15)]
    clip = media.write_video(tmp_path / "lead-in.mp4", empty + tutor)
    result = preprocess_video(clip, tmp_path / "out", expected_seconds=2.0, background_blur=True)
    assert result.frame_count == 50
    assert result.blur == {"frames": 50, "blurred": 35, "frames_without_person": 15}
    source, blurred = _frames(clip), _frames(tmp_path / "out" / "frames.mp4")
    everywhere = np.ones(wall.shape[:2], bool)
    for before, after in zip(source[:15], blurred[:15], strict=True):
        assert np.abs(after.astype(int) - before).mean() < 2.5  # the re-encode only
        assert _laplacian_variance(after, everywhere) >= 0.8 * _laplacian_variance(before, everywhere)
    regions = _sure_background(source[15:])
    ratios = [
        _laplacian_variance(after, region) / _laplacian_variance(before, region)
        for before, after, region in zip(source[15:], blurred[15:], regions, strict=True)
    ]
    assert np.median(ratios) <= 0.30


def test_a_video_without_any_person_passes_through_unchanged():
    frames = [np.full((240, 320, 3), 90 + i, np.uint8) for i in range(10)]
    with BackgroundBlur() as blur:
        outputs = [blur.apply(frame, None) for frame in frames]
    assert all(out is frame for out, frame in zip(outputs, frames, strict=True))
    assert blur.stats.as_dict() == {"frames": 10, "blurred": 0, "frames_without_person": 10}


def test_the_face_is_kept_exactly_even_where_segmentation_doubts_it():
    # Before encoding, the face hull (its landmarks, with a margin) is copied unchanged.
    from lipsync_worker.face_tracking import FaceTracker

    frames = media.face_frames(0.4)
    with FaceTracker() as tracker, BackgroundBlur() as blur:
        for frame in frames:
            landmarks, _count = tracker.process(frame)
            out = blur.apply(frame, landmarks)
            hull = np.zeros(frame.shape[:2], np.uint8)
            cv2.fillConvexPoly(hull, cv2.convexHull(landmarks.astype(np.int32)), 1)
            assert np.array_equal(out[hull.astype(bool)], frame[hull.astype(bool)])
            assert not np.array_equal(out, frame)
