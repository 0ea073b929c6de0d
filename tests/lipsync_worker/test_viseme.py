"""The `viseme` engine on a real (generated) face: mouth curves, the warp, and idle frames."""

import numpy as np
import pytest

from lipsync_worker.asset_pipeline import preprocess_video
from lipsync_worker.assets import AvatarAssets, idle_index
from lipsync_worker.engines import engine_list, get_engine
from lipsync_worker.engines.base import SAMPLES_PER_FRAME, AudioSegment, Timing
from lipsync_worker.engines.viseme.visemes import curves_from_audio, curves_from_timings, viseme_for


@pytest.fixture(scope="module")
def assets(face_video, tmp_path_factory):
    folder = tmp_path_factory.mktemp("viseme-assets")
    preprocess_video(face_video, folder, expected_seconds=2.0)
    return AvatarAssets.from_dir(folder)


def _phonemes(spec):
    """[("h", 0, 80), ...] -> phoneme timings."""
    return [Timing("phoneme", p, a, b) for p, a, b in spec]


def test_phonemes_map_to_visemes():
    assert viseme_for("ɑː") == "aa" and viseme_for("AA1") == "aa"
    assert viseme_for("m") == "PP" and viseme_for("b") == "PP"
    assert viseme_for("uː") == "U" and viseme_for("tʃ") == "CH"
    assert viseme_for("ˈ") == "sil"


def test_vowels_open_the_mouth_and_lips_close_for_p_b_m():
    timings = _phonemes(
        [("", 0, 200), ("m", 200, 320), ("ɑː", 320, 640), ("p", 640, 760), ("ɑ", 760, 1040), ("", 1040, 1600)]
    )
    opening, _ = curves_from_timings(timings, 1.6)
    assert len(opening) == 40
    assert opening[:4].max() < 0.05  # silence before speech
    assert opening[10:14].max() > 0.6  # "ah"
    assert opening[16:18].min() < 0.15  # the lips meet for "p" between the vowels
    assert opening[-10:].max() < 0.02  # and the mouth closes after the last sound


def test_audio_drives_the_mouth_when_there_are_no_timings():
    t = np.arange(32000) / 16000
    bursts = (np.sin(2 * np.pi * 3 * t) > 0.3) * 0.3 * np.sin(2 * np.pi * 440 * t)
    opening, _ = curves_from_audio(bursts.astype(np.float32))
    loud = np.array([np.abs(bursts[k * 640 : (k + 1) * 640]).max() > 0.1 for k in range(50)])
    assert opening[loud].mean() > 0.3
    assert opening[~loud].mean() < opening[loud].mean() / 2
    silent, _ = curves_from_audio(np.zeros(16000, np.float32))
    assert silent.max() == 0


def test_idle_frames_walk_forwards_and_backwards():
    assert [idle_index(k, 4) for k in range(8)] == [0, 1, 2, 3, 2, 1, 0, 1]
    assert idle_index(5, 1) == 0


def test_silence_renders_the_idle_frames_untouched(assets):
    engine = get_engine("viseme")
    prepared = engine.prepare(assets)
    frames = list(engine.render(prepared, AudioSegment(np.zeros(SAMPLES_PER_FRAME * 10, np.float32)), 3))
    assert [f.index for f in frames] == [assets.idle_frame_index(3 + k) for k in range(10)]
    for f in frames:
        diff = np.abs(f.image.astype(int) - assets.frame(f.index)).mean()
        assert diff < 0.5


def test_speech_moves_only_the_lower_face_and_follows_the_head(assets):
    engine = get_engine("viseme")
    prepared = engine.prepare(assets)
    timings = _phonemes([("ɑː", 0, 1200)])
    frames = list(engine.render(prepared, AudioSegment(np.zeros(16000 * 12 // 10, np.float32), timings), 0))
    track = assets.track
    changed_rows = []
    for f in frames[5:25]:
        idle = assets.frame(f.index)
        diff = np.abs(f.image.astype(int) - idle).sum(axis=2)
        ys, xs = np.nonzero(diff > 30)
        assert len(ys) > 50, "the mouth did not open"
        lm = track["landmarks"][f.index]
        nose, chin = lm[2], lm[152]
        # Every changed pixel is below the nose, near the mouth and jaw...
        assert ys.min() >= nose[1] - 3
        assert ys.max() <= chin[1] + 0.6 * (chin[1] - nose[1])
        assert abs(xs.mean() - track["mouth_center"][f.index][0]) < 0.25 * track["mouth_width"][f.index] + 3
        changed_rows.append(ys.mean() - track["mouth_center"][f.index][1])
        # ... and the eyes and forehead are exactly the idle frame.
        eye_row = int(lm[33][1])
        assert diff[: eye_row + 5].max() == 0
    # The edited region moves with the face (it stays at the same place relative to the mouth).
    assert np.std(changed_rows) < 4


def test_viseme_is_listed_as_usable_without_weights(settings):
    viseme = {row["id"]: row for row in engine_list()}["viseme"]
    assert viseme["available"] and viseme["device"] == "cpu" and viseme["needs_weights"] is False
