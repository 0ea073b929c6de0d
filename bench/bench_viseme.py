"""The `viseme` engine: lip-sync quality measured on the rendered MP4, and speed.

    python bench/bench_viseme.py [--video V] [--seconds 20]

Renders a ~20 s utterance (piper TTS with phoneme timings, and ../shared/fixtures/eng.wav
driving the mouth from audio when present) on ../shared/fixtures/sun.mp4 (or a generated
face clip), then runs the face-landmark model over the MP4 and prints:
  - Pearson r between the intended and the measured mouth opening   (goal >= 0.8)
  - mouth closed in pauses >= 300 ms: |opening - rest| / mouth width (goal <= 0.10)
  - mean absolute difference to the idle frame outside the lower face (goal <= 2/255)
  - audio/video offset from the cross-correlation of opening and loudness (goal <= 40 ms)
  - render frames per second on one core, before encoding          (goal >= 100)
  - wall time to render and encode the clip                         (goal <= 5 s for 20 s)
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATA = Path(tempfile.mkdtemp(prefix="vt-bench-viseme-"))
os.environ["DATA_DIR"] = str(BENCH_DATA)
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import django  # noqa: E402

django.setup()

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from lipsync_worker.asset_pipeline import preprocess_video  # noqa: E402
from lipsync_worker.assets import AvatarAssets  # noqa: E402
from lipsync_worker.engines.base import SAMPLES_PER_FRAME, AudioSegment  # noqa: E402
from lipsync_worker.engines.viseme import VisemeEngine  # noqa: E402
from lipsync_worker.face_tracking import (  # noqa: E402
    LIP_INNER_BOTTOM,
    LIP_INNER_TOP,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    FaceTracker,
)
from lipsync_worker.render_encoder import render_clip  # noqa: E402
from lipsync_worker.speech import segment_from_file, segment_from_tts_chunk, segment_join  # noqa: E402

FIXTURES = BASE_DIR.parent / "shared" / "fixtures"
PARAGRAPH = (
    "Good morning, everyone. Today we are going to look at fractions, and why they matter. "
    "Imagine you share a pizza with three friends. Each of you gets one quarter of the pizza. "
    "Now, what happens if two more friends arrive? Everyone gets a smaller piece: one sixth. "
    "So the bigger the number at the bottom, the smaller each part becomes. "
    "Let's try a few examples together, slowly, one at a time."
)


def _measure(video: Path, assets: AvatarAssets, indices: list[int], idle_frames: list[np.ndarray]):
    """Per frame: inner-lip opening and mouth width measured by the landmark model."""
    opening, width, outside = [], [], []
    with av.open(str(video)) as container, FaceTracker() as tracker:
        for k, frame in enumerate(container.decode(video=0)):
            image = frame.to_ndarray(format="bgr24")
            lm, _ = tracker.process(image)
            if lm is None:
                opening.append(np.nan)
                width.append(np.nan)
            else:
                opening.append(float(np.linalg.norm(lm[LIP_INNER_BOTTOM] - lm[LIP_INNER_TOP])))
                width.append(float(np.linalg.norm(lm[MOUTH_RIGHT] - lm[MOUTH_LEFT])))
            if k % 5 == 0 and k < len(indices):
                outside.append(_outside_mad(image, idle_frames, assets, indices[k]))
    return np.array(opening), np.array(width), float(np.mean(outside))


def _outside_mad(image, idle_frames, assets, index):
    """Mean |output - idle frame| outside the lower face (nose base, jaw line, neck)."""
    idle = idle_frames[index]
    lm = assets.track["landmarks"][index]
    jaw = [234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454]
    pts = lm[jaw].copy()
    chin_to_nose = lm[152, 1] - lm[2, 1]
    below = pts.copy()
    below[:, 1] += 0.6 * chin_to_nose  # the neck below the jaw is compressed when the jaw drops
    region = np.vstack([lm[[234, 2, 454]], below[::-1], pts])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [cv2.convexHull(region.astype(np.int32))], 1)
    mask = cv2.dilate(mask, np.ones((9, 9), np.uint8))
    h, w = mask.shape
    keep = mask[: min(h, idle.shape[0]), : min(w, idle.shape[1])] == 0
    diff = np.abs(image[: idle.shape[0], : idle.shape[1]].astype(np.int16) - idle[: image.shape[0], : image.shape[1]])
    return float(diff[keep].mean())


def _offset_ms(opening: np.ndarray, samples: np.ndarray) -> float:
    """Lag of the measured opening behind the loudness (positive: picture late)."""
    n = min(len(opening), len(samples) // SAMPLES_PER_FRAME)
    loud = np.sqrt((samples[: n * SAMPLES_PER_FRAME].reshape(n, -1) ** 2).mean(axis=1))
    o = np.nan_to_num(opening[:n] - np.nanmean(opening[:n]))
    a = loud - loud.mean()
    lags = range(-6, 7)
    scores = []
    for lag in lags:
        if lag >= 0:
            scores.append(float(np.dot(o[lag:], a[: n - lag])))
        else:
            scores.append(float(np.dot(o[:lag], a[-lag:])))
    i = int(np.argmax(scores))
    frac = 0.0
    if 0 < i < len(scores) - 1:
        left, mid, right = scores[i - 1], scores[i], scores[i + 1]
        denom = left - 2 * mid + right
        frac = 0.5 * (left - right) / denom if denom else 0.0
    return (list(lags)[i] + frac) * 40.0


def _pearson(a, b):
    ok = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _report(name, engine, prepared, assets, audio: AudioSegment, out_dir: Path, rest_ratio: np.ndarray, idle_frames):
    # Speed before encoding, on one core (OMP_NUM_THREADS=1; the loop is single-threaded).
    cpu0, wall0 = time.process_time(), time.perf_counter()
    indices = []
    for rendered in engine.render(prepared, audio, 0):
        indices.append(rendered.index)
    cpu = time.process_time() - cpu0
    render_only_wall = time.perf_counter() - wall0
    fps_per_core = len(indices) / cpu
    out = out_dir / f"{name}.mp4"
    t0 = time.perf_counter()
    result = render_clip(engine, prepared, assets.size, audio, str(out))
    wall = time.perf_counter() - t0

    opening, width, outside = _measure(out, assets, indices, idle_frames)
    ratio = opening / width
    intended = result.mouth_open
    r = _pearson(ratio, intended)
    # Pauses: runs of >= 8 frames (300+ ms) where the intended mouth is at rest.
    quiet = intended < 0.02
    pause_errors = []
    k = 0
    while k < len(quiet):
        if quiet[k]:
            j = k
            while j < len(quiet) and quiet[j]:
                j += 1
            if j - k >= 8:
                seg = slice(k + 2, j - 2)  # allow the mouth 80 ms to close and to start opening
                pause_errors.extend(np.abs(ratio[seg] - rest_ratio[np.array(indices[seg])]).tolist())
            k = j
        else:
            k += 1
    pause_err = float(np.nanmax(pause_errors)) if pause_errors else float("nan")
    offset = _offset_ms(
        opening, np.pad(audio.samples, (0, max(0, len(indices) * SAMPLES_PER_FRAME - len(audio.samples))))
    )
    seconds = len(indices) / 25

    def goal(value, limit, higher=False):
        ok = value >= limit if higher else value <= limit
        return f"goal {'>=' if higher else '<='} {limit:g} ({value / limit:.2f}x) {'OK' if ok else 'MISSED'}"

    print(f"[{name}] {seconds:.1f} s of speech, {len(indices)} frames at {assets.size[0]}x{assets.size[1]}")
    print(f"  mouth opening Pearson r     = {r:.3f}   {goal(r, 0.8, higher=True)}")
    if pause_errors:
        print(
            f"  pauses >= 300 ms: max |open - rest|/width = {pause_err:.3f}   {goal(pause_err, 0.10)}"
            f"   ({len(pause_errors)} paused frames)"
        )
    else:
        print("  pauses >= 300 ms: none in this speech")
    print(f"  outside lower face MAD      = {outside:.2f}/255   {goal(outside, 2.0)}")
    print(f"  A/V offset                  = {offset:+.0f} ms   {goal(abs(offset), 40.0)}")
    print(
        f"  render fps per core         = {fps_per_core:.0f}   {goal(fps_per_core, 100, higher=True)}"
        f"   (wall {len(indices) / render_only_wall:.0f} fps)"
    )
    print(
        f"  render + encode wall        = {wall:.2f} s for {seconds:.1f} s   "
        f"{goal(wall * 20 / seconds, 5.0)} (scaled to 20 s)"
    )
    print(f"  output: {out}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", default=str(FIXTURES / "sun.mp4"))
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    video = Path(args.video)
    if not video.exists():
        from tests import media

        video = media.write_video(BENCH_DATA / "astronaut.mp4", media.face_frames(10.0, size=(576, 768)))
    assets_dir = BENCH_DATA / "assets"
    preprocess_video(video, assets_dir, expected_seconds=20)
    assets = AvatarAssets.from_dir(assets_dir)
    engine = VisemeEngine()
    prepared = engine.prepare(assets)
    print(f"avatar: {video.name}, {assets.frame_count} frames")

    # The avatar's own rest opening per frame, as the landmark model sees the idle frames,
    # and the idle frames themselves as the normalised video holds them.
    rest = assets.track["mouth_opening"] / assets.track["mouth_width"]
    with av.open(str(assets_dir / "frames.mp4")) as container:
        idle_frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]

    from tts_worker.engines import get_engine

    piper = get_engine("piper")
    if piper.availability()[0]:
        segments = []
        for chunk in piper.synthesize(PARAGRAPH):
            segments.append(segment_from_tts_chunk(chunk))
            if sum(s.duration for s in segments) >= args.seconds:
                break
        _report("piper-phonemes", engine, prepared, assets, segment_join(segments), BENCH_DATA, rest, idle_frames)
    else:
        print("piper unavailable:", piper.availability()[1])
    wav = FIXTURES / "eng.wav"
    if wav.exists():
        audio = segment_from_file(str(wav))
        audio = AudioSegment(audio.samples[: int(args.seconds * 16000)])
        _report("eng.wav-audio", engine, prepared, assets, audio, BENCH_DATA, rest, idle_frames)


if __name__ == "__main__":
    main()
