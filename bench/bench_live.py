"""Live sessions: latency, frame rate, concurrency, interrupt, A/V offset, memory.

    python bench/bench_live.py [--av-seconds 60] [--cycles 50] [--max-sessions 6] [--says 5]
    (or LIVE_BENCH_AV_SECONDS / LIVE_BENCH_CYCLES / ... with `python -m tutor_site.launcher bench bench_live.py`)

Starts its own worker (threads pool, as `make run`) and daphne on a throw-away SQLite
database, makes an avatar from ../shared/fixtures/sun.mp4 (or the astronaut clip), starts
it, and drives aiortc viewers over the signaling WebSocket on loopback.

The issue asks for the A/V offset after 10 minutes and memory after 200 cycles: pass
`--av-seconds 600 --cycles 200` for those; the defaults are shorter so `make bench` stays quick.
Goals: say -> first lip-synced frame <= 400 ms (piper + viseme); >= 3 concurrent sessions
at 25 fps; interrupt <= 200 ms; A/V offset <= 40 ms; memory flat over the cycles.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATA = Path(tempfile.mkdtemp(prefix="vt-bench-live-"))
os.environ["DATA_DIR"] = str(BENCH_DATA)
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("REDIS_KEY_PREFIX", "vt-bench-live")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")
os.environ.setdefault("LIVE_MAX_SESSIONS_PER_ADMIN", "50")
os.environ.setdefault("LIVE_MAX_SESSIONS_PER_WORKER", "50")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from tests.live.client import LiveClient, fps_between, loopback_only_ice, loud  # noqa: E402

TEXT = (
    "Good morning, everyone. Today we are going to talk about the water cycle, and how rain "
    "falls from the clouds, flows into rivers, and returns to the sea."
)


def setup_avatars(count: int, name: str = "bench_live"):
    """The benchmarks' throw-away world: a migrated SQLite database in BENCH_DATA, an admin
    and a tutor, and `count` ready avatars (`name`, `name_1`, ...) sharing the assets of
    ../shared/fixtures/sun.mp4 (or the generated face clip). Returns (avatars, JWT)."""
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    from avatars.models import Avatar
    from avatars.storage import storage_save
    from lipsync_worker.asset_pipeline import preprocess_video
    from tests import media
    from tutors.services import admin_create, tutor_create

    call_command("migrate", verbosity=0)
    video = BASE_DIR.parent / "shared" / "fixtures" / "sun.mp4"
    if not video.exists():
        video = media.write_video(BENCH_DATA / "face.mp4", media.face_frames(4.0), audio_seconds=4.0)
    result = preprocess_video(video, BENCH_DATA / "assets", expected_seconds=10)
    for file_name, path in result.files.items():
        storage_save(f"bench/assets/{file_name}", path)
    user, _ = admin_create(email="bench@bench.test", password="bench-password")
    tutor = tutor_create(owner=user, name="Bench")
    avatars = [
        Avatar.objects.create(
            tutor=tutor,
            name=name if i == 0 else f"{name}_{i}",
            status="inactive",
            assets_path="bench/assets",
            avatar_model="viseme",
            tts_model="piper",
            frame_count=result.frame_count,
            width=result.width,
            height=result.height,
        )
        for i in range(count)
    ]
    print(f"avatar      video={video.name} {result.width}x{result.height} frames={result.frame_count}")
    return avatars, str(RefreshToken.for_user(user).access_token)


def setup_world(name: str = "bench_live"):
    """One ready avatar and a JWT (see setup_avatars)."""
    avatars, token = setup_avatars(1, name)
    return avatars[0], token


def start_over_http(daphne, avatar_id: int, token: str) -> float:
    """POST /start?wait=1 through the server; returns the seconds it took."""
    import urllib.request

    request = urllib.request.Request(
        f"{daphne.url}/api/avatars/{avatar_id}/start?wait=1",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=180) as response:
        assert response.status == 200, response.read()
    return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mouth_openings(frames):
    """Inner-lip opening / mouth width per received frame, by the landmark model (robust to
    the stream's compression, unlike pixel differences)."""
    import cv2

    from lipsync_worker.face_tracking import LIP_INNER_BOTTOM, LIP_INNER_TOP, MOUTH_LEFT, MOUTH_RIGHT, FaceTracker

    out = []
    with FaceTracker() as tracker:
        for grey in frames:
            lm, _ = tracker.process(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
            if lm is None:
                out.append(np.nan)
            else:
                out.append(
                    float(
                        np.linalg.norm(lm[LIP_INNER_BOTTOM] - lm[LIP_INNER_TOP])
                        / np.linalg.norm(lm[MOUTH_RIGHT] - lm[MOUTH_LEFT])
                    )
                )
    return np.array(out)


def av_offset_ms(video_times, openings, audio, start, end, step=0.02):
    """Lag of the mouth opening behind the loudness, both by arrival time at the viewer
    (positive: picture late), from their cross-correlation on a 20 ms grid."""
    grid = np.arange(start, end, step)
    vt = np.array(video_times)
    idx = np.clip(np.searchsorted(vt, grid, side="right") - 1, 0, len(vt) - 1)
    o = np.nan_to_num(openings[idx] - np.nanmean(openings))
    at = np.array([t for t, _p, _r in audio])
    ar = np.array([r for _t, _p, r in audio])
    aidx = np.clip(np.searchsorted(at, grid, side="right") - 1, 0, len(at) - 1)
    a = ar[aidx] - ar[aidx].mean()
    lags = list(range(-15, 16))
    n = len(grid)
    scores = [float(np.dot(o[lag:], a[: n - lag])) if lag >= 0 else float(np.dot(o[:lag], a[-lag:])) for lag in lags]
    i = int(np.argmax(scores))
    frac = 0.0
    if 0 < i < len(scores) - 1:
        denom = scores[i - 1] - 2 * scores[i] + scores[i + 1]
        frac = 0.5 * (scores[i - 1] - scores[i + 1]) / denom if denom else 0.0
    return (lags[i] + frac) * step * 1000


SERVER_LATENCIES: list = []  # the worker's own say -> first speech frame on its clock


async def one_say(client, idle, text=TEXT, listen=2.5):
    """(say -> first lip-synced frame, say -> first sound, interrupt -> silence, A/V offset) in ms."""
    rec = client.recorder
    f0, a0 = len(rec.frames), len(rec.audio)
    said = await client.send({"type": "say", "text": text})
    started = await client.wait_event(lambda e: e.get("type") == "speaking_started", 20)
    SERVER_LATENCIES.append(started.get("latency_ms"))
    await asyncio.sleep(listen)
    frames = rec.frames[max(0, f0 - 25) :]
    # Kept frames were recorded with the latest arrivals (frames may have been cleared before).
    times = [t for t, _ in rec.video[-len(frames) :]]
    # Heavy work: off the loop, or the viewer's own aiortc stalls meanwhile.
    loop = asyncio.get_running_loop()
    openings = await loop.run_in_executor(None, mouth_openings, frames)
    before = min(25, f0)
    rest = float(np.nanmedian(openings[:before])) if before else float(np.nanmin(openings))
    speaking = np.nonzero((openings[before:-1] > rest + 0.08) & (openings[before + 1 :] > rest + 0.08))[0]
    first_frame = times[before + speaking[0]] if len(speaking) else None
    first_sound = next((t for t, _p, r in rec.audio[a0:] if loud(r)), None)
    offset = None
    if first_sound is not None:
        offset = await loop.run_in_executor(
            None, av_offset_ms, times, openings, rec.audio, first_sound - 0.3, times[-1]
        )
    t_int = await client.send({"type": "interrupt"})
    await client.wait_event(lambda e: e.get("type") == "speaking_ended", 5)
    await asyncio.sleep(0.8)
    loud_after = [t for t, _p, r in rec.audio if t > t_int and loud(r)]
    ms = lambda a, b: None if a is None or b is None else (a - b) * 1000  # noqa: E731
    return (
        ms(first_frame, said),
        ms(first_sound, said),
        (max(loud_after) - t_int) * 1000 if loud_after else 0.0,
        offset,
    )


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"median={statistics.median(values):.0f} ms  max={max(values):.0f} ms  (n={len(values)})"


async def run(args, avatar, token, daphne, worker_pid, idle):
    # 1-2-4: latency, sustained fps, interrupt.
    client = LiveClient(daphne.ws_url, avatar.pk, token)
    assert (await client.connect())["type"] == "answer"
    await client.wait_event(lambda e: e.get("state") == "connected", 20)
    await asyncio.sleep(2)
    results = [await one_say(client, idle) for _ in range(args.says)]
    frame_ms = [r[0] for r in results]
    print(
        f"say->lip-synced frame  {fmt(frame_ms)}  goal<=400  "
        f"ratio={statistics.median([v for v in frame_ms if v] or [0]) / 400:.2f}"
    )
    print(f"say->first sound       {fmt([r[1] for r in results])}")
    print(f"  of which in the worker (say received -> first speech frame on its clock) {fmt(SERVER_LATENCIES)}")
    inter = [r[2] for r in results]
    print(
        f"interrupt->silence     {fmt(inter)}  goal<=200  ratio={statistics.median(inter) / 200:.2f}  "
        "(client side: includes network and the receiver's jitter buffer)"
    )
    av0 = [r[3] for r in results if r[3] is not None]
    print(
        f"A/V offset at start    {fmt([abs(v) for v in av0])}  goal<=40  "
        f"ratio={(statistics.median([abs(v) for v in av0]) if av0 else 0) / 40:.2f}  "
        "(cross-correlation of mouth opening and loudness at the viewer)"
    )

    t0 = time.monotonic()
    await client.send({"type": "say", "text": TEXT + " " + TEXT})
    await asyncio.sleep(8)
    fps = fps_between(client.recorder.video, t0 + 1, time.monotonic())
    print(f"sustained fps (speaking) {fps:.1f}  goal=25  ratio={fps / 25:.2f}")
    await client.send({"type": "interrupt"})

    # 5: A/V offset after a long run (the same session keeps streaming).
    client.recorder.keep_frames = False
    client.recorder.frames.clear()
    print(f"streaming {args.av_seconds} s before measuring the A/V offset again...", flush=True)
    end = time.monotonic() + args.av_seconds
    while time.monotonic() < end:
        await client.send({"type": "say", "text": "Keep going. We are nearly there.", "interrupt": True})
        await asyncio.sleep(min(5, max(0, end - time.monotonic())))
    await client.send({"type": "interrupt"})
    client.recorder.keep_frames = True
    await asyncio.sleep(1.5)
    later = [await one_say(client, idle) for _ in range(3)]
    av1 = [abs(r[3]) for r in later if r[3] is not None]
    print(
        f"A/V offset after {args.av_seconds} s  {fmt(av1)}  goal<=40  "
        f"ratio={(statistics.median(av1) if av1 else 0) / 40:.2f}"
    )
    await client.close()

    # 3: concurrent sessions at full frame rate, all speaking.
    best = 0
    for n in range(1, args.max_sessions + 1):
        clients = [LiveClient(daphne.ws_url, avatar.pk, token, keep_frames=False) for _ in range(n)]
        answers = await asyncio.gather(*(c.connect() for c in clients))
        if any(a.get("type") != "answer" for a in answers):
            print(f"concurrent {n}: refused {[a.get('detail') for a in answers if a.get('type') != 'answer']}")
            break
        await asyncio.gather(*(c.wait_event(lambda e: e.get("state") == "connected", 30) for c in clients))
        for c in clients:
            await c.send({"type": "say", "text": TEXT})
        await asyncio.sleep(2)
        t0 = time.monotonic()
        await asyncio.sleep(5)
        rates = [fps_between(c.recorder.video, t0, time.monotonic()) for c in clients]
        ok = min(rates) >= 24.0
        print(
            f"concurrent {n}: fps min={min(rates):.1f} mean={statistics.mean(rates):.1f}  "
            f"{'full rate' if ok else 'below 24 fps'}",
            flush=True,
        )
        await asyncio.gather(*(c.close() for c in clients))
        if not ok:
            break
        best = n
    print(f"concurrent sessions at full frame rate: {best}  goal>=3  ratio={best / 3:.2f}")

    # 6: memory over connect/disconnect cycles.
    await asyncio.sleep(1)
    before = rss_mb(worker_pid)
    samples = []
    for i in range(args.cycles):
        c = LiveClient(daphne.ws_url, avatar.pk, token, keep_frames=False)
        assert (await c.connect())["type"] == "answer"
        await c.wait_event(lambda e: e.get("state") == "connected", 20)
        await c.close()
        if (i + 1) % max(1, args.cycles // 4) == 0:
            samples.append(round(rss_mb(worker_pid)))
    await asyncio.sleep(2)
    after = rss_mb(worker_pid)
    print(
        f"worker RSS over {args.cycles} connect/disconnect cycles: before={before:.0f} MB  "
        f"during={samples}  after={after:.0f} MB  growth={after - before:+.0f} MB"
    )


def main():
    parser = argparse.ArgumentParser()
    # Environment defaults too, since `make bench` passes no arguments.
    env = os.environ.get
    parser.add_argument("--av-seconds", type=int, default=int(env("LIVE_BENCH_AV_SECONDS", 60)))
    parser.add_argument("--cycles", type=int, default=int(env("LIVE_BENCH_CYCLES", 50)))
    parser.add_argument("--max-sessions", type=int, default=int(env("LIVE_BENCH_MAX_SESSIONS", 6)))
    parser.add_argument("--says", type=int, default=int(env("LIVE_BENCH_SAYS", 5)))
    args = parser.parse_args()
    loopback_only_ice()
    avatar, token = setup_world()

    import cv2
    from django.conf import settings

    from lipsync_worker.assets import AvatarAssets
    from tests.conftest import DaphneServer, WorkerProcess

    env = dict(os.environ, PYTHONUNBUFFERED="1", REDIS_URL=settings.REDIS_URL, LOG_LEVEL="WARNING")
    worker = WorkerProcess(env, BENCH_DATA / "worker.log", "bench")
    daphne = DaphneServer(env, BENCH_DATA / "daphne.log")
    try:
        print(f"start (warm-up) {start_over_http(daphne, avatar.pk, token):.2f} s")
        assets = AvatarAssets.from_dir(BENCH_DATA / "assets")
        idle = np.stack(
            [cv2.cvtColor(assets.frame(i), cv2.COLOR_BGR2GRAY)[::4, ::4] for i in range(assets.frame_count)]
        ).astype(np.float32)
        asyncio.run(run(args, avatar, token, daphne, worker.proc.pid, idle))
    finally:
        daphne.stop()
        worker.stop()


if __name__ == "__main__":
    main()
