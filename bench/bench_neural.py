"""The neural lip-sync engines (wav2lip, ultralight, MuseTalk): speed and memory.

    python bench/bench_neural.py [--engines wav2lip,ultralight,MuseTalk] [--batches 1,16,64]
                                 [--seconds 8] [--frames 100] [--compile]

Random weights with the real architecture sizes (nothing is downloaded), written to a
temporary weights folder and loaded through the engines' own loaders. Prints, per engine:
  - warm-up: model load from the checkpoint files, then preparing one avatar
  - network frames per second per batch size (fp16 on CUDA, fp32 on CPU)
  - end-to-end render frames per second (audio features, network, paste into the frame)
  - memory: model, per prepared avatar (session), and the peak while rendering
MuseTalk runs only on CUDA (about 0.8 TFLOP a frame). Goals on one H100: MuseTalk >= 150,
Wav2Lip >= 500, Ultralight >= 500 frames per second.

Runs without Django (the engines' registry is bypassed), so it also runs on a bare GPU
machine that has torch, transformers, diffusers, opencv and scipy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
# Import the engines without lipsync_worker/engines/__init__.py (the registry needs Django).
_pkg = types.ModuleType("lipsync_worker.engines")
_pkg.__path__ = [str(BASE_DIR / "lipsync_worker" / "engines")]
sys.modules["lipsync_worker.engines"] = _pkg

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lipsync_worker.engines.base import SAMPLE_RATE, AudioSegment  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
DTYPE = torch.float16 if CUDA else torch.float32


class SyntheticAssets:
    """An avatar's assets as the engines read them: 720p frames, a face track."""

    def __init__(self, frames: int = 100, width: int = 1280, height: int = 720):
        rng = np.random.default_rng(0)
        base = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
        self.meta = {"frame_count": frames, "width": width, "height": height, "fps": 25, "avatar_id": 1}
        self.jpeg_frames = []
        boxes, landmarks = [], []
        for i in range(frames):
            dx, dy = 8 * np.sin(i / 7), 5 * np.cos(i / 9)
            x1, y1, x2, y2 = 490 + dx, 160 + dy, 790 + dx, 520 + dy
            image = base.copy()
            cv2.ellipse(image, (int((x1 + x2) / 2), int((y1 + y2) / 2)), (150, 180), 0, 0, 360, (120, 150, 200), -1)
            self.jpeg_frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
            boxes.append((x1, y1, x2, y2))
            lms = np.stack([rng.uniform(x1, x2, 478), rng.uniform(y1, y2, 478)], 1)
            lms[168] = ((x1 + x2) / 2, y1 + 0.4 * (y2 - y1))
            landmarks.append(lms)
        self.track = {"boxes": np.array(boxes, np.float32), "landmarks": np.array(landmarks, np.float32)}

    @property
    def frame_count(self) -> int:
        return len(self.jpeg_frames)

    @property
    def size(self) -> tuple[int, int]:
        return self.meta["width"], self.meta["height"]

    def frame(self, index: int) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(self.jpeg_frames[index], np.uint8), cv2.IMREAD_COLOR)

    def idle_frame_index(self, k: int) -> int:
        n = self.frame_count
        period = 2 * n - 2
        p = k % period
        return p if p < n else period - p


def speech(seconds: float) -> AudioSegment:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 140 * h * t) / h for h in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return AudioSegment(samples=(0.2 * voice).astype(np.float32))


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def memory_mb() -> float:
    if CUDA:
        return torch.cuda.memory_allocated() / 2**20
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_reset() -> None:
    if CUDA:
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if CUDA else memory_mb()


def random_like(model: torch.nn.Module, dtype=torch.float32) -> dict:
    gen = torch.Generator().manual_seed(0)
    out = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = (torch.rand(value.shape, generator=gen) + 0.5).to(dtype)
        else:
            fan_in = value[0].numel() if value.ndim > 1 else 1
            out[key] = (torch.randn(value.shape, generator=gen) / max(1.0, fan_in) ** 0.5).to(dtype)
    return out


def timed(fn, min_seconds: float = 1.0, min_iters: int = 3) -> float:
    """Seconds per call after one warm-up call."""
    fn()
    sync()
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < min_seconds:
        fn()
        iters += 1
    sync()
    return (time.perf_counter() - start) / iters


# --- per engine: write random checkpoints, build the engine, time the parts -------------


def setup_wav2lip(folder: Path, args):
    from lipsync_worker.engines.wav2lip.engine import Wav2LipEngine
    from lipsync_worker.engines.wav2lip.network import Wav2Lip

    torch.save({"state_dict": {"module." + k: v for k, v in random_like(Wav2Lip()).items()}}, folder / "wav2lip.pth")
    engine = Wav2LipEngine(checkpoint=folder / "wav2lip.pth", batch_size=args.render_batch)

    def network(batch: int):
        model = engine.model()
        mel = torch.randn(batch, 1, 80, 16, device=DEVICE, dtype=DTYPE)
        face = torch.rand(batch, 6, 96, 96, device=DEVICE, dtype=DTYPE).contiguous(memory_format=torch.channels_last)
        return torch.inference_mode()(lambda: model(mel, face))

    return engine, engine.model, network


def setup_ultralight(folder: Path, args):
    from lipsync_worker.engines.ultralight.audio import HUBERT_LARGE, build_hubert
    from lipsync_worker.engines.ultralight.engine import UltralightEngine
    from lipsync_worker.engines.ultralight.network import Model

    torch.save({"epoch": 1, "model": random_like(Model())}, folder / "ultralight.pth")
    hub = folder / "hubert"
    hub.mkdir()
    (hub / "config.json").write_text(json.dumps(HUBERT_LARGE))
    torch.save(
        {"hubert." + k: v for k, v in random_like(build_hubert(), torch.float16).items()}, hub / "pytorch_model.bin"
    )
    engine = UltralightEngine(hubert_dir=hub, checkpoint=folder / "ultralight.pth", batch_size=args.render_batch)
    holder = {}

    def network(batch: int):
        model = holder.get("model")
        if model is None:
            from lipsync_worker.engines.ultralight.network import build_ultralight

            model = holder["model"] = build_ultralight(folder / "ultralight.pth").to(
                DEVICE, DTYPE, memory_format=torch.channels_last
            )
        face = torch.rand(batch, 6, 160, 160, device=DEVICE, dtype=DTYPE).contiguous(memory_format=torch.channels_last)
        audio = torch.randn(batch, 16, 32, 32, device=DEVICE, dtype=DTYPE)
        return torch.inference_mode()(lambda: model(face, audio))

    return engine, engine.hubert, network


def setup_musetalk(folder: Path, args):
    from lipsync_worker.engines.musetalk import network as mt
    from lipsync_worker.engines.musetalk.engine import MuseTalkEngine

    (folder / "sd-vae").mkdir()
    (folder / "whisper").mkdir()
    with torch.device("meta"):
        unet = mt.build_unet()
    # fp16 files: half the bytes to write and read for the 850M-parameter UNet.
    torch.save(random_like(unet.to_empty(device="cpu"), torch.float16), folder / "unet.pth")
    del unet
    torch.save(random_like(mt.build_vae()), folder / "sd-vae" / "diffusion_pytorch_model.bin")
    torch.save(
        {"model.encoder." + k: v for k, v in random_like(mt.build_whisper_encoder()).items()},
        folder / "whisper" / "pytorch_model.bin",
    )
    engine = MuseTalkEngine(weights_root=folder, batch_size=args.render_batch)

    def network(batch: int):
        models = engine.models()
        if args.compile and not getattr(models, "_compiled", False):
            models.unet = torch.compile(models.unet)
            models.vae.decoder = torch.compile(models.vae.decoder)
            models._compiled = True
        latents = torch.randn(batch, 8, 32, 32, device=DEVICE, dtype=DTYPE)
        audio = torch.randn(batch, 50, 384, device=DEVICE, dtype=DTYPE)
        return lambda: models.generate(latents, audio)

    return engine, engine.models, network


SETUPS = {"wav2lip": setup_wav2lip, "ultralight": setup_ultralight, "MuseTalk": setup_musetalk}


def bench_engine(name: str, args, assets: SyntheticAssets) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"vt-bench-{name}-"))
    engine, load, network = SETUPS[name](folder, args)
    result = {"engine": name, "device": torch.cuda.get_device_name() if CUDA else "cpu", "dtype": str(DTYPE)}

    base = memory_mb()
    start = time.perf_counter()
    load()
    sync()
    result["load_s"] = round(time.perf_counter() - start, 2)
    result["model_mb"] = round(memory_mb() - base, 1)

    before = memory_mb()
    start = time.perf_counter()
    handle = engine.prepare(assets)
    sync()
    result["prepare_s"] = round(time.perf_counter() - start, 2)
    result["prepare_per_frame_ms"] = round(1000 * result["prepare_s"] / assets.frame_count, 2)
    result["session_mb"] = round(memory_mb() - before, 1)

    fps = {}
    for batch in args.batches:
        try:
            per_call = timed(network(batch), min_seconds=args.min_seconds)
            fps[batch] = round(batch / per_call, 1)
        except torch.cuda.OutOfMemoryError:
            fps[batch] = "OOM"
            torch.cuda.empty_cache()
        print(f"   {name} batch {batch:>3}: {fps[batch]} fps (network)", flush=True)
    result["network_fps"] = fps

    audio = speech(args.seconds)
    # Warm-up of the whole path with the same length: first calls load CUDA kernels lazily
    # and pick algorithms per shape (seconds, once per worker), which is not the rate.
    list(engine.render(handle, audio, 0))
    peak_reset()
    sync()
    start = time.perf_counter()
    first = None
    count = 0
    for _ in engine.render(handle, audio, 0):
        if first is None:
            first = time.perf_counter() - start
        count += 1
    sync()
    elapsed = time.perf_counter() - start
    result["render_fps"] = round(count / elapsed, 1)
    result["render_batch"] = engine.batch_size
    result["first_frame_ms"] = round(1000 * first, 1)
    result["render_peak_mb"] = round(peak_mb(), 1)

    # The render loop's parts, to see what limits it.
    start = time.perf_counter()
    features = engine.audio_features(handle, audio)
    sync()
    result["audio_features_ms_per_s"] = round(1000 * (time.perf_counter() - start) / args.seconds, 1)
    start = time.perf_counter()
    for k in range(count):
        engine.compose(
            handle, k % assets.frame_count, assets.frame(k % assets.frame_count), np.zeros((256, 256, 3), np.uint8)
        )
    result["decode_paste_ms_per_frame"] = round(1000 * (time.perf_counter() - start) / count, 2)
    del features
    engine.release(handle)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="wav2lip,ultralight,MuseTalk" if CUDA else "wav2lip,ultralight")
    parser.add_argument("--batches", default="1,8,16,32,64,128" if CUDA else "1,8,16")
    parser.add_argument("--render-batch", type=int, default=32 if CUDA else 16)
    parser.add_argument("--seconds", type=float, default=8.0 if CUDA else 4.0)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=2.0 if CUDA else 1.0)
    parser.add_argument("--compile", action="store_true", help="torch.compile MuseTalk's UNet and VAE decoder")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    print(
        f"torch {torch.__version__}, device {torch.cuda.get_device_name() if CUDA else 'cpu'}, "
        f"threads {torch.get_num_threads()}",
        flush=True,
    )
    assets = SyntheticAssets(args.frames)
    results = []
    for name in args.engines.split(","):
        if name == "MuseTalk" and not CUDA:
            print("   MuseTalk: skipped on CPU (about 0.8 TFLOP a frame)")
            continue
        print(f"== {name}", flush=True)
        result = bench_engine(name, args, assets)
        results.append(result)
        print(json.dumps(result), flush=True)
        if CUDA:
            torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(
        "\nengine      load s  prepare ms/frame  best network fps (batch)  render fps  first frame ms  "
        "model MB  session MB  peak MB"
    )
    for r in results:
        numeric = {b: f for b, f in r["network_fps"].items() if isinstance(f, float)}
        best = max(numeric, key=numeric.get) if numeric else None
        print(
            f"{r['engine']:<11} {r['load_s']:>6}  {r['prepare_per_frame_ms']:>16}  "
            f"{(str(numeric[best]) + ' (' + str(best) + ')') if best else '-':>24}  {r['render_fps']:>10}  "
            f"{r['first_frame_ms']:>14}  {r['model_mb']:>8}  {r['session_mb']:>10}  {r['render_peak_mb']:>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
