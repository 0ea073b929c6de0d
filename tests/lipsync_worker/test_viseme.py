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


# --- the avatar's own mouths ------------------------------------------------------------
#
# A tutor's upload usually shows them talking. The test makes one without ../shared: the
# astronaut's mouth opened and closed (the warp, as on a closed-mouth upload) over 3 s,
# encoded and preprocessed like any upload; its frames then hold real open and closed
# mouths of that face, which the engine must reuse.

SYLLABLES = [("m", 0, 80), ("ɑː", 80, 360), ("t", 360, 440), ("iː", 440, 640), ("", 640, 800)]


def _speech(seconds: float, spec) -> AudioSegment:
    return AudioSegment(np.zeros(int(16000 * seconds), np.float32), _phonemes(spec))


def _repeat(spec, times: int, period_ms: float):
    return [(p, a + k * period_ms, b + k * period_ms) for k in range(times) for p, a, b in spec]


@pytest.fixture(scope="module")
def talking_assets(assets, tmp_path_factory):
    from lipsync_worker.engines.viseme.mouth_warp import MouthGeometry, render_mouth
    from tests import media

    geometry = MouthGeometry.from_landmarks(assets.track["landmarks"])
    # Syllables of varying strength, wide open (beyond the warp's usual widest).
    strength = [1.6, 0.8, 1.3, 0.5, 1.7, 1.0]
    frames = []
    for k in range(75):
        index = assets.idle_frame_index(k)
        syllable = k // 12
        phase = (k % 12) / 12
        opening = strength[syllable % len(strength)] * max(0.0, np.sin(np.pi * phase * 1.5)) if phase < 0.67 else 0.0
        frames.append(render_mouth(assets.frame(index), geometry, index, opening))
    folder = tmp_path_factory.mktemp("talking")
    video = media.write_video(folder / "talking.mp4", frames)
    preprocess_video(video, folder / "assets", expected_seconds=3.0)
    return folder / "assets"


def _measure(images) -> np.ndarray:
    """Inner-lip gap / mouth width as the landmark model sees each image."""
    from lipsync_worker.face_tracking import LIP_INNER_BOTTOM, LIP_INNER_TOP, MOUTH_LEFT, MOUTH_RIGHT, FaceTracker

    out = []
    with FaceTracker() as tracker:
        for image in images:
            lm, _ = tracker.process(image)
            assert lm is not None, "the face is lost in a rendered frame"
            out.append(
                np.linalg.norm(lm[LIP_INNER_BOTTOM] - lm[LIP_INNER_TOP])
                / np.linalg.norm(lm[MOUTH_RIGHT] - lm[MOUTH_LEFT])
            )
    return np.array(out)


def test_a_still_closed_mouth_upload_falls_back_to_the_warp(assets):
    prepared = get_engine("viseme").prepare(assets)
    assert not prepared.uses_bank and len(prepared.bank.frames) == 0 and prepared.rested == 0


def test_a_talking_upload_gives_its_own_mouths_by_shape(talking_assets):
    assets = AvatarAssets.from_dir(talking_assets)
    prepared = get_engine("viseme").prepare(assets)
    bank = prepared.bank
    assert prepared.uses_bank and len(bank.frames) == assets.frame_count
    # The index spans this person's closed and open mouths...
    span = bank.opening_hi - bank.opening_lo
    assert span > 0.04
    # ... and the mouth chosen for a wanted shape has that shape.
    for wanted in (0.0, 0.5, 1.0):
        opening = np.full(10, wanted)
        want_o, want_w = bank.wanted(opening, np.zeros(10))
        frames = np.arange(10)
        plan = bank.plan(frames, prepared.features, want_o, want_w, np.zeros(10), prepared.teeth)
        got = np.where(plan >= 0, bank.features.opening[np.maximum(plan, 0)], prepared.features.opening[frames])
        assert np.abs(got - want_o).max() < 0.2 * span, (wanted, got, want_o)


def test_rendered_mouth_follows_the_speech_and_closes_in_pauses(talking_assets):
    assets = AvatarAssets.from_dir(talking_assets)
    source = [assets.frame(i) for i in range(assets.frame_count)]
    engine = get_engine("viseme")
    prepared = engine.prepare(assets)
    # Different rhythm from the source's: the mouth must follow the new speech, not replay.
    speech = _speech(
        4.0, [("", 0, 400)] + _repeat([("ɑː", 0, 500), ("", 500, 1000)], 3, 1000)[:-1] + [("", 3000, 4000)]
    )
    frames = list(engine.render(prepared, speech, 5))
    intended = np.array([f.mouth_open for f in frames])
    measured = _measure([f.image for f in frames])
    assert np.corrcoef(measured, intended)[0, 1] > 0.8
    open_frames, closed_frames = intended > 0.6, intended < 0.02
    own = assets.track["mouth_opening"] / assets.track["mouth_width"]
    own_range = np.percentile(own, 95) - np.percentile(own, 5)
    assert measured[open_frames].mean() - measured[closed_frames].mean() > 0.35 * own_range
    # Closed in the pauses: as closed as the person's mouth gets in their own video.
    assert np.median(measured[closed_frames]) < np.percentile(own, 10) + 0.2 * own_range
    # Nothing above the mouth changed (the eyes, the forehead): only JPEG noise at most.
    for f in frames[::5]:
        lm = assets.track["landmarks"][f.index]
        above = int(lm[2][1]) - 4
        assert np.abs(f.image[:above].astype(int) - source[f.index][:above]).mean() < 1.0


def test_the_idle_loop_of_a_talking_upload_shows_a_closed_mouth(talking_assets):
    assets = AvatarAssets.from_dir(talking_assets)
    before = _measure([assets.frame(i) for i in range(0, assets.frame_count, 3)])
    prepared = get_engine("viseme").prepare(assets)
    assert prepared.rested > 0
    # What a live session shows between answers, and a render's silent frames.
    idle = _measure([assets.frame(i) for i in range(0, assets.frame_count, 3)])
    closed, widest = np.percentile(before, 5), before.max()
    assert widest - closed > 0.06
    assert idle.max() < closed + 0.3 * (widest - closed)
    silent = list(get_engine("viseme").render(prepared, AudioSegment(np.zeros(16000, np.float32)), 0))
    assert _measure([f.image for f in silent]).max() < closed + 0.3 * (widest - closed)


def test_an_avatar_loaded_at_the_live_size_speaks_at_that_size(talking_assets):
    """Live sessions load a viseme avatar at the size they send (LIVE_VIDEO_MAX_HEIGHT): the
    frames and the face track are scaled once, and speech is rendered at that size."""

    from lipsync_worker.frame_size import video_size

    full = AvatarAssets.from_dir(talking_assets)
    width, height = full.size
    # 7/8: the test face is small (a mouth ~35 px wide); much smaller, the landmark model that
    # measures the result loses the lips (540 of a 768-high upload is 0.7 of a far bigger face).
    small = AvatarAssets.from_dir(talking_assets, lambda w, h: video_size(w, h, max_height=height * 7 // 8))
    sw, sh = small.size
    assert sh <= height * 7 // 8 and abs(sw / sh - width / height) < 0.02
    assert small.frame(0).shape == (sh, sw, 3) and small.frame_count == full.frame_count
    scale = np.array([sw / width, sh / height])
    assert np.allclose(small.track["landmarks"], full.track["landmarks"] * scale, atol=0.01)
    assert np.allclose(small.track["mouth_width"], full.track["mouth_width"] * scale.mean(), rtol=0.01)

    engine = get_engine("viseme")
    prepared = engine.prepare(small)
    assert prepared.uses_bank
    speech = _speech(3.0, [("", 0, 400)] + _repeat([("ɑː", 0, 500), ("", 500, 1000)], 2, 1000) + [("", 2400, 3000)])
    frames = list(engine.render(prepared, speech, 5))
    assert all(f.image.shape == (sh, sw, 3) for f in frames)
    # The mouth opens where the scaled track says it is: the pixels that change from the idle
    # frame (at the same size) sit around the scaled mouth centre, below the nose.
    opened = [f for f in frames if f.mouth_open > 0.6]
    assert opened, "the speech never opened the mouth"
    for f in opened:
        idle = small.frame(f.index)
        ys, xs = np.nonzero(np.abs(f.image.astype(int) - idle).sum(axis=2) > 30)
        assert len(ys) > 20, "the mouth did not open"
        centre, mouth_w = small.track["mouth_center"][f.index], small.track["mouth_width"][f.index]
        assert abs(xs.mean() - centre[0]) < 0.35 * mouth_w + 2 and abs(ys.mean() - centre[1]) < 0.8 * mouth_w + 2
        # Nothing above the nose base, but for the blend's feathered edge (about 0.1 mouth width).
        assert ys.min() >= small.track["landmarks"][f.index][2][1] - 4 - 0.15 * mouth_w


def test_pasted_mouths_follow_the_head_but_not_the_tracking_wobble():
    """Where mouths are pasted: a head that moves, turns and nods is followed exactly; the
    wobble of single tracked points (noise, the upper lip moving with the old speech) is
    smoothed out."""
    from lipsync_worker.engines.viseme import _steady_placement

    rng = np.random.default_rng(3)
    face = rng.uniform(-60, 60, (478, 2))
    face[33], face[263] = (-40.0, 0.0), (40.0, 0.0)  # the outer eye corners
    frames = 60
    t = np.arange(frames)
    angle = 0.15 * np.sin(t / 5)
    scale = 1 + 0.1 * np.sin(t / 7)
    rot = np.stack([np.stack([np.cos(angle), -np.sin(angle)], 1), np.stack([np.sin(angle), np.cos(angle)], 1)], 1)
    head = np.einsum("tij,pj->tpi", rot, face) * scale[:, None, None] + np.stack([200 + 8 * t, 150 + 3 * t], 1)[:, None]
    assert np.allclose(_steady_placement(head), head, atol=1e-6)  # a rigid head: placed where it is
    wobble = head.copy()
    wobble[:, 0] += rng.normal(0, 2.0, (frames, 2))  # the top of the upper lip (an anchor point)
    placed = _steady_placement(wobble)
    assert np.abs(placed[:, 0] - head[:, 0]).mean() < 0.5 * np.abs(wobble[:, 0] - head[:, 0]).mean()


def test_a_pasted_mouths_lips_can_be_bent_into_shape_and_nothing_far_from_them_moves():
    """reshape_lips: the outline moves as asked (a lower lip lowered by 3 px), smoothly, and
    the image away from the lips stays as it was."""
    from lipsync_worker.engines.viseme.mouth_blend import reshape_lips

    image = np.full((120, 160, 3), 200, np.uint8)
    image[60:63, 40:120] = 40  # a dark lip line, 80 px wide
    image[5:10, 5:20] = 0  # something far away
    lips = np.stack([np.linspace(45, 115, 20), np.full(20, 61.0)], axis=1)
    moves = np.tile([0.0, 3.0], (20, 1))
    bent = reshape_lips(image, lips, moves, mouth_w=80.0)
    column = bent[:, 80, 0].astype(int)
    assert 62 <= int(np.argmin(column)) <= 65  # the line moved down by ~3 px
    assert np.array_equal(bent[:20, :40], image[:20, :40])  # far from the lips: untouched
    assert np.array_equal(reshape_lips(image, lips, np.zeros_like(moves), 80.0), image)
