"""Does the `viseme` engine look like the person speaking? Measured on the rendered MP4.

    python bench/bench_lipsync_quality.py [--fixtures talker-desk,sun] [--seconds 12]

For each of ../shared/fixtures/{talker-desk,talker-expressive,sun,yongen}.mp4: preprocess,
render a paragraph of piper speech (phoneme timings) with the engine as it is ("after")
and with the warp alone ("before": `VisemeEngine(use_bank=False)`), run the face-landmark
model over each MP4 and print, with the ratio to the goal:
  - measured mouth opening (inner-lip gap / mouth width) vs the intended   r >= 0.9
  - measured opening vs the speech's loudness envelope                      r >= 0.65
  - opening range while speaking (p95 - p5, in mouth widths) vs the range the
    source video shows (p95 - p5 over its frames)                           >= 70 %
  - frame-to-frame jitter of the mouth landmarks (mean |second difference| in
    face-normalised coordinates, mouth widths) vs the source video's         <= 1x
  - mean absolute difference to the source frame outside the lower face    <= 2/255
  - render frames per second on one core, before encoding                  >= 100
and writes a contact sheet of mouth close-ups (before above after, every other frame of
the first sentence) per fixture, whose paths it prints.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATA = Path(tempfile.mkdtemp(prefix="vt-bench-lipsync-"))
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
from lipsync_worker.engines.viseme.mouth_bank import MIN_TALKING_RANGE  # noqa: E402
from lipsync_worker.face_tracking import FaceTracker  # noqa: E402
from lipsync_worker.render_encoder import render_clip  # noqa: E402
from lipsync_worker.speech import segment_from_tts_chunk, segment_join  # noqa: E402

FIXTURES = BASE_DIR.parent / "shared" / "fixtures"
SHEETS = BASE_DIR / "var" / "bench"
NAMES = ["talker-desk", "talker-expressive", "sun", "yongen"]
PARAGRAPH = (
    "Imagine you share a pizza with three friends. Each of you gets one quarter of the pizza. "
    "Now, what happens if two more friends arrive? Everyone gets a smaller piece: one sixth. "
    "So the bigger the number at the bottom, the smaller each part becomes."
)
EYES = (33, 263)
INNER = ((13, 14), (82, 87), (312, 317))
MOUTH_CORNERS = (61, 291)
LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
LIPS += [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
JAW = [234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454]


def mouth_measures(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: opening / mouth width, and the lip points in face coordinates (eye line,
    in mouth widths of the clip's median), NaN where no face was found."""
    lm = landmarks.astype(np.float64)
    left, right = lm[:, EYES[0]], lm[:, EYES[1]]
    axis = right - left
    iod = np.linalg.norm(axis, axis=1)
    ex = axis / iod[:, None]
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)
    gap = np.mean([((lm[:, b] - lm[:, a]) * ey).sum(axis=1) for a, b in INNER], axis=0)
    width = np.linalg.norm(lm[:, MOUTH_CORNERS[1]] - lm[:, MOUTH_CORNERS[0]], axis=1)
    rel = lm[:, LIPS] - ((left + right) / 2)[:, None, :]
    face = np.stack([(rel * ex[:, None, :]).sum(2), (rel * ey[:, None, :]).sum(2)], axis=2) / iod[:, None, None]
    face /= np.nanmedian(width / iod)
    return np.maximum(gap, 0) / width, face


def jitter(face_points: np.ndarray) -> float:
    """Mean |second difference| of the lip points (mouth widths per frame^2)."""
    acc = face_points[2:] - 2 * face_points[1:-1] + face_points[:-2]
    return float(np.nanmean(np.linalg.norm(acc, axis=2)))


def track_video(path: Path) -> np.ndarray:
    out = []
    with av.open(str(path)) as container, FaceTracker() as tracker:
        for frame in container.decode(video=0):
            lm, _ = tracker.process(frame.to_ndarray(format="bgr24"))
            out.append(lm if lm is not None else np.full((478, 2), np.nan, np.float32))
    return np.array(out)


def outside_mad(image, source, lm) -> float:
    """Mean |output - source frame| outside the lower face (nose base, jaw line, neck)."""
    pts = lm[JAW].copy()
    below = pts.copy()
    below[:, 1] += 0.6 * (lm[152, 1] - lm[2, 1])
    region = np.vstack([lm[[234, 2, 454]], below[::-1], pts])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [cv2.convexHull(region.astype(np.int32))], 1)
    mask = cv2.dilate(mask, np.ones((9, 9), np.uint8))
    h = min(image.shape[0], source.shape[0])
    w = min(image.shape[1], source.shape[1])
    keep = mask[:h, :w] == 0
    diff = np.abs(image[:h, :w].astype(np.int16) - source[:h, :w])
    return float(diff[keep].mean())


def loudness(samples: np.ndarray, frames: int) -> np.ndarray:
    padded = np.pad(samples, (0, max(0, frames * SAMPLES_PER_FRAME - len(samples))))[: frames * SAMPLES_PER_FRAME]
    rms = np.sqrt((padded.reshape(frames, -1) ** 2).mean(axis=1))
    kernel = np.array([1, 2, 1]) / 4
    return np.convolve(np.pad(rms, 1, mode="edge"), kernel, mode="valid")


def pearson(a, b) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def goal(value, limit, higher=False) -> str:
    ok = value >= limit if higher else value <= limit
    ratio = value / limit if limit else float("inf")
    return f"goal {'>=' if higher else '<='} {limit:g} ({ratio:.2f}x) {'OK' if ok else 'MISSED'}"


def close_ups(frames: list[np.ndarray], indices: list[int], landmarks: np.ndarray, count: int) -> list[np.ndarray]:
    tiles = []
    for k in range(0, min(len(frames), 2 * count), 2):
        lm = landmarks[indices[k]]
        width = float(np.linalg.norm(lm[291] - lm[61]))
        cx, cy = (lm[61] + lm[291]) / 2 + (0, 0.35 * width)
        half = int(1.15 * width)
        x0, y0 = int(cx) - half, int(cy) - half
        tile = frames[k][max(0, y0) : y0 + 2 * half, max(0, x0) : x0 + 2 * half]
        tiles.append(cv2.resize(tile, (112, 112), interpolation=cv2.INTER_AREA))
    return tiles


def render_and_measure(label, engine, assets, audio, source_frames, out_dir):
    prepared = engine.prepare(assets)
    indices, images = [], []
    for rendered in engine.render(prepared, audio, 0):
        indices.append(rendered.index)
        images.append(rendered.image)
    # Timed a second time, as a live avatar renders: its frames decoded and cached already.
    cpu0 = time.process_time()
    for _rendered in engine.render(prepared, audio, 0):
        pass
    fps = len(indices) / max(time.process_time() - cpu0, 1e-9)
    out = out_dir / f"{label}.mp4"
    result = render_clip(engine, prepared, assets.size, audio, str(out))
    tracked = track_video(out)
    ratio, face = mouth_measures(tracked)
    mad = np.mean(
        [
            outside_mad(images[k], source_frames[indices[k]], assets.track["landmarks"][indices[k]])
            for k in range(0, len(images), 5)
        ]
    )
    return {
        "intended": result.mouth_open,
        "ratio": ratio[: len(result.mouth_open)],
        "jitter": jitter(face),
        "mad": float(mad),
        "fps": fps,
        "images": images,
        "indices": indices,
        "bank": len(prepared.bank.frames),
        "rested": prepared.rested,
    }


def fixture_report(name: str, audio: AudioSegment, sentence_frames: int) -> Path | None:
    video = FIXTURES / f"{name}.mp4"
    if not video.exists():
        print(f"[{name}] missing: {video}")
        return None
    folder = BENCH_DATA / name
    with av.open(str(video)) as container:
        seconds = float(container.duration / 1e6)
    preprocess_video(video, folder, expected_seconds=seconds)
    with av.open(str(folder / "frames.mp4")) as container:
        source_frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    src_ratio, src_face = mouth_measures(AvatarAssets.from_dir(folder).track["landmarks"])
    src_range = float(np.percentile(src_ratio, 95) - np.percentile(src_ratio, 5))
    src_jitter = jitter(src_face)
    runs = {}
    for label, engine in (("before", VisemeEngine(use_bank=False)), ("after", VisemeEngine())):
        assets = AvatarAssets.from_dir(folder)
        runs[label] = render_and_measure(f"{name}-{label}", engine, assets, audio, source_frames, BENCH_DATA)
        runs[label]["landmarks"] = assets.track["landmarks"]
    print(
        f"[{name}] {len(source_frames)} source frames; speech {audio.duration:.1f} s; source opening range "
        f"{src_range:.3f} mouth widths, jitter {src_jitter:.4f}"
    )
    for label, run in runs.items():
        intended, ratio = run["intended"], run["ratio"]
        loud = loudness(audio.samples, len(intended))
        speaking = loud > 0.1 * np.percentile(loud, 95)
        rng = float(np.nanpercentile(ratio[speaking], 95) - np.nanpercentile(ratio[speaking], 5))
        range_goal = 0.7 * src_range
        mode = f"bank of {run['bank']} mouths, {run['rested']} idle frames closed" if run["bank"] else "warp"
        print(f"  {label} ({mode}):")
        r_intended = pearson(ratio, intended)
        print(f"    opening vs intended r   = {r_intended:.3f}   {goal(r_intended, 0.9, True)}")
        print(f"    opening vs loudness r   = {pearson(ratio, loud):.3f}   {goal(pearson(ratio, loud), 0.65, True)}")
        print(f"    range while speaking    = {rng:.3f}   {goal(rng, range_goal, True)} (70 % of the source's)")
        if src_range >= MIN_TALKING_RANGE:
            print(
                f"    lip jitter              = {run['jitter']:.4f}   {goal(run['jitter'], src_jitter)} (the source's)"
            )
        else:  # a still mouth's jitter is its stillness: any speech exceeds it
            print(
                f"    lip jitter              = {run['jitter']:.4f}   "
                f"(the source never talks: its {src_jitter:.4f} is no goal)"
            )
        print(f"    outside lower face MAD  = {run['mad']:.2f}/255   {goal(run['mad'], 2.0)}")
        print(f"    render fps per core     = {run['fps']:.0f}   {goal(run['fps'], 100, True)}")
    count = min(sentence_frames // 2, 36)
    rows = []
    for label in ("before", "after"):
        run = runs[label]
        tiles = close_ups(run["images"], run["indices"], run["landmarks"], count)
        for k, tile in enumerate(tiles):
            cv2.putText(tile, f"{run['intended'][2 * k]:.2f}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 0), 1)
        per_row = 12
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)
        for i in range(0, len(tiles), per_row):
            row = np.hstack(tiles[i : i + per_row])
            cv2.putText(row, label, (3, 108), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
            rows.append(row)
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    SHEETS.mkdir(parents=True, exist_ok=True)
    path = SHEETS / f"lipsync_contact_sheet_{name}.png"
    cv2.imwrite(str(path), np.vstack(rows))
    print(f"  contact sheet (before above after, every other frame of the first sentence): {path}")
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixtures", default=",".join(NAMES))
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    from tts_worker.engines import get_engine

    piper = get_engine("piper")
    ok, why = piper.availability()
    if not ok:
        print("piper unavailable:", why)
        return
    segments = []
    for chunk in piper.synthesize(PARAGRAPH):
        segments.append(segment_from_tts_chunk(chunk))
        if sum(s.duration for s in segments) >= args.seconds:
            break
    audio = segment_join(segments)
    print(f"speech: {audio.duration:.1f} s in {len(segments)} sentences (piper, phoneme timings)")
    for name in args.fixtures.split(","):
        fixture_report(name, audio, segments[0].frame_count)


if __name__ == "__main__":
    main()
