"""Scale-out: placement spread, drain and kill, on 2 live lip-sync workers.

    python bench/bench_cluster.py [--starts 10] [--rounds 3]
    (or `python -m tutor_site.launcher bench bench_cluster.py`)

Starts its own web server, tts worker and two live workers (`-Q live`, as `make cluster`)
on a throw-away SQLite database, makes avatars from ../shared/fixtures/sun.mp4 (or the
generated face clip) and prints:
  - placement spread of N starts over the 2 workers          (goal: within one of N/2)
  - SIGTERM -> drained (worker exited; no sessions open)      (goal: <= 2 s + its 0 s grace)
  - SIGTERM -> drained with a viewer (the grace period ends it) (goal: grace + <= 3 s)
  - SIGKILL -> its avatars shown inactive                     (goal: <= 10 s, default heartbeat)
Default heartbeat settings (LIVE_HEARTBEAT_SECONDS=3, LIVE_HEARTBEAT_TTL=10) unless set.
"""

import argparse
import asyncio
import logging
import os
import signal
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("REDIS_KEY_PREFIX", "vt-bench-cluster")
os.environ.setdefault("LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN", "100")
os.environ.setdefault("LIVE_DRAIN_GRACE_SECONDS", "5")
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The same throw-away world (environment, Django, avatars) as the live benchmark.
import bench_live as world
import httpx

from tests.live.client import LiveClient, loopback_only_ice


def start(http, avatar_id) -> dict:
    response = http.post(f"/api/avatars/{avatar_id}/start?wait=1", json={})
    assert response.status_code == 200, response.text
    return http.get(f"/api/avatars/{avatar_id}").json()["serving_worker"]


def wait(predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError


def stop_all(http, avatars) -> None:
    for avatar in avatars:
        http.post(f"/api/avatars/{avatar.pk}/stop")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=int(os.environ.get("CLUSTER_BENCH_STARTS", 10)))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("CLUSTER_BENCH_ROUNDS", 2)))
    args = parser.parse_args()
    loopback_only_ice()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    avatars, token = world.setup_avatars(args.starts, "bench_cluster")

    from django.conf import settings

    from tests.conftest import DaphneServer, WorkerProcess

    env = dict(os.environ, PYTHONUNBUFFERED="1", REDIS_URL=settings.REDIS_URL, LOG_LEVEL="WARNING")
    grace = settings.LIVE_DRAIN_GRACE_SECONDS
    daphne = DaphneServer(env, world.BENCH_DATA / "daphne.log")
    tts = WorkerProcess(env, world.BENCH_DATA / "tts.log", "tts", queues="tts")
    serial = iter(range(1, 1000))
    workers = [
        WorkerProcess(env, world.BENCH_DATA / f"w{n}.log", f"lipsync{n}", queues="live")
        for n in (next(serial), next(serial))
    ]
    http = httpx.Client(base_url=daphne.url, headers={"Authorization": f"Bearer {token}"}, timeout=200)
    drained, drained_viewer, killed = [], [], []
    try:
        time.sleep(2 * settings.LIVE_HEARTBEAT_SECONDS)  # both runtimes have sent a heartbeat
        # Placement spread.
        placed = [start(http, a.pk)["name"].split(" pid ")[0] for a in avatars]
        counts = {name: placed.count(name) for name in sorted(set(placed))}
        spread_ok = len(counts) == 2 and max(counts.values()) - min(counts.values()) <= 1
        print(f"placement of {args.starts} starts over 2 workers: {counts}  goal: within one of {args.starts / 2:g}")
        print(f"  ratio to goal: {max(counts.values()) / (args.starts / 2):.2f}  {'ok' if spread_ok else 'MISSED'}")
        stop_all(http, avatars)

        for _ in range(args.rounds):
            # SIGTERM, nothing open: how long until the worker is gone.
            victim = workers.pop(0)
            start(http, avatars[0].pk)
            told = time.monotonic()
            os.killpg(victim.proc.pid, signal.SIGTERM)
            victim.proc.wait(60)
            drained.append(time.monotonic() - told)
            victim.stop()
            workers.append(WorkerProcess(env, world.BENCH_DATA / "wn.log", f"lipsync{next(serial)}", queues="live"))

            # SIGTERM with a viewer connected: the grace period, then its session ends.
            avatar = avatars[1]
            serving = start(http, avatar.pk)["name"]
            victim = next(w for w in workers if serving.startswith(w.name + "@"))

            async def viewer_drained(victim=victim, avatar=avatar):
                client = LiveClient(daphne.ws_url, avatar.pk, token, keep_frames=False)
                assert (await client.connect())["type"] == "answer"
                await client.wait_event(lambda e: e.get("state") == "connected", 20)
                told = time.monotonic()
                os.killpg(victim.proc.pid, signal.SIGTERM)
                await client.wait_event(lambda e: e.get("type") == "state" and e.get("state") == "closed", grace + 30)
                await asyncio.to_thread(victim.proc.wait, 60)
                await client.close(bye=False)
                return time.monotonic() - told

            drained_viewer.append(asyncio.run(viewer_drained()))
            victim.stop()
            workers.remove(victim)
            workers.append(WorkerProcess(env, world.BENCH_DATA / "wn.log", f"lipsync{next(serial)}", queues="live"))
            time.sleep(settings.LIVE_HEARTBEAT_SECONDS)

            # SIGKILL: how long until its avatars show inactive.
            avatar = avatars[2]
            serving = start(http, avatar.pk)["name"]
            victim = next(w for w in workers if serving.startswith(w.name + "@"))
            killed_at = time.monotonic()
            victim.kill()
            wait(lambda a=avatar: http.get(f"/api/avatars/{a.pk}").json()["status"] == "inactive", 60)
            killed.append(time.monotonic() - killed_at)
            victim.stop()
            workers.remove(victim)
            workers.append(WorkerProcess(env, world.BENCH_DATA / "wn.log", f"lipsync{next(serial)}", queues="live"))
            stop_all(http, avatars)
            time.sleep(settings.LIVE_HEARTBEAT_SECONDS)

        def line(label, values, goal):
            median = statistics.median(values)
            print(
                f"{label:<44} median={median:.2f} s max={max(values):.2f} s  "
                f"goal<={goal:g} s  ratio={median / goal:.2f}"
            )

        line("SIGTERM -> drained (no sessions)", drained, 2.0)
        line(f"SIGTERM -> drained (a viewer, grace {grace:g} s)", drained_viewer, grace + 3)
        line("SIGKILL -> avatars inactive", killed, 10.0)
        print(
            f"  heartbeat every {settings.LIVE_HEARTBEAT_SECONDS:g} s, dead after {settings.LIVE_HEARTBEAT_TTL} s "
            f"without one; load average {os.getloadavg()[0]:.2f}"
        )
    finally:
        http.close()
        for process in [*workers, tts]:
            process.stop()
        daphne.stop()


if __name__ == "__main__":
    main()
