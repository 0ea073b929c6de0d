"""TTS benchmark: time to first audio and real-time factor per available engine.

    python bench/bench_tts.py [--runs N] [--engine NAME ...]

For a 3-sentence paragraph: the model is loaded first (reported, not counted), then each run
measures the time until the first sentence's audio is ready and the real-time factor
(synthesis time / audio duration) of the whole paragraph. Medians over the runs are printed.
Goals on the 2-core reference machine: piper first audio <= 150 ms, RTF <= 0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")

import django

django.setup()

from tts_worker.engines import engine_list  # noqa: E402

PARAGRAPH = (
    "Good morning, and welcome to today's lesson about fractions. "
    "A fraction describes a part of a whole, like one half of a pizza. "
    "Let's start with a simple example that everybody knows."
)
GOALS = {"piper": (150.0, 0.1)}


def measure(engine, runs: int) -> dict:
    start = time.perf_counter()
    list(engine.synthesize("Warm up."))  # loads the model
    load_s = time.perf_counter() - start
    firsts, rtfs, audio_s = [], [], 0.0
    for _ in range(runs):
        start = time.perf_counter()
        first = None
        audio_s = 0.0
        for chunk in engine.synthesize(PARAGRAPH):
            if first is None:
                first = time.perf_counter() - start
            audio_s += len(chunk.pcm) / chunk.sample_rate
        total = time.perf_counter() - start
        firsts.append(1000 * first)
        rtfs.append(total / audio_s)
    return {
        "load_s": load_s,
        "first_ms": statistics.median(firsts),
        "first_ms_max": max(firsts),
        "rtf": statistics.median(rtfs),
        "audio_s": audio_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", action="append", help="only these engines (default: all available)")
    args = parser.parse_args()

    print(
        f"TTS benchmark: 3-sentence paragraph ({len(PARAGRAPH)} characters), {args.runs} runs, "
        f"{os.cpu_count()} CPU cores"
    )
    print(f"{'engine':<11} {'load s':>7} {'first audio ms':>15} {'(max)':>7} {'RTF':>7} {'audio s':>8}  goal")
    failed = False
    for engine in engine_list():
        if args.engine and engine.name not in args.engine:
            continue
        available, reason = engine.availability()
        if not available:
            print(f"{engine.name:<11} unavailable: {reason}")
            continue
        r = measure(engine, args.runs)
        goal = ""
        if engine.name in GOALS:
            max_first, max_rtf = GOALS[engine.name]
            ok = r["first_ms"] <= max_first and r["rtf"] <= max_rtf
            failed |= not ok
            goal = f"{'met' if ok else 'MISSED'} (first <= {max_first:g} ms, RTF <= {max_rtf:g})"
        print(
            f"{engine.name:<11} {r['load_s']:>7.2f} {r['first_ms']:>15.1f} {r['first_ms_max']:>7.1f} "
            f"{r['rtf']:>7.3f} {r['audio_s']:>8.2f}  {goal}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
