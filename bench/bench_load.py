"""The API under load: 200 concurrent clients reading avatars from the running system.

    python bench/bench_load.py            (or `python -m tutor_site.launcher bench bench_load.py`)
    LOAD_BENCH_SECONDS=20 LOAD_BENCH_CLIENTS=200 python bench/bench_load.py

Starts the system as `make run` does (`python -m tutor_site.launcher run`: the web server
and the workers, on a throw-away DATA_DIR with SQLite; Redis from REDIS_URL, or its own
embedded one), creates an admin with a tutor and LOAD_BENCH_AVATARS avatars (uploaded
through the API and processed by the worker), then runs LOAD_BENCH_CLIENTS asyncio + httpx
clients for LOAD_BENCH_SECONDS (default 60), each in a loop over list, detail and preview
(GET /api/avatars/list, /api/avatars/{id}, /api/avatars/{id}/preview) on connections of
their own. Prints throughput, p50/p95/p99 latency and errors against the goals: no errors,
p95 <= 100 ms. The clients run on the same machine as the server and share its cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

GOAL_P95_MS = 100.0
GOAL_ERRORS = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class RunningSystem:
    """`make run` (`python -m tutor_site.launcher run`) in a throw-away DATA_DIR on a free
    port, in a process group of its own; `stop()` ends it with SIGTERM, as Ctrl-C does."""

    def __init__(self, name: str, **extra_env: str):
        self.data = Path(tempfile.mkdtemp(prefix=f"vt-bench-{name}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATA_DIR": str(self.data),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "REDIS_KEY_PREFIX": f"vt-bench-{name}-{os.getpid()}",
            "DJANGO_SUPERUSER_EMAIL": "ops@bench.test",
            "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16),
            "LOG_LEVEL": "WARNING",
            **extra_env,
        }
        for inherited in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT"):
            self.env.pop(inherited, None)  # a throw-away SQLite database and media
        self.log_path = self.data / "system.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tutor_site.launcher", "run"],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the system exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the system did not become healthy:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def manage(self, *args: str) -> None:
        env = {**self.env, "LOG_LEVEL": "ERROR"}
        subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True, capture_output=True)

    def admin_client(self, email: str = "bench@bench.test"):
        """An admin of its own (manage.py createadmin), signed in through the API."""
        import httpx

        password = secrets.token_urlsafe(16)
        self.manage("createadmin", email, "--password", password)
        login = httpx.post(f"{self.url}/api/auth/login", data={"username": email, "password": password}, timeout=30)
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def wait_for_engines(self, api, timeout: float = 120.0) -> None:
        """Until the workers have published their engines (the web reads them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = api.get("/api/avatars/tts-models").json()
            if any(row.get("available") for row in rows):
                return
            time.sleep(0.5)
        raise RuntimeError(f"no tts worker published its engines:\n{self.log_tail()}")

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process of the system (the launcher's descendants)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        found, frontier = {}, [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            try:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            frontier += [child for child, parent in parents.items() if parent == pid]
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def upload_avatars(system: RunningSystem, api, count: int) -> list[int]:
    """`count` avatars uploaded through the API, processed by the worker."""
    from tests import media

    video = media.write_video(system.data / "tutor.mp4", media.face_frames(2.0), audio_seconds=2.0)
    tutor = api.post("/api/tutors/", json={"name": "Bench tutor"})
    tutor.raise_for_status()
    ids = []
    for n in range(count):
        with open(video, "rb") as fh:
            response = api.post(
                "/api/avatars/create",
                data={"tutor_id": str(tutor.json()["id"]), "name": f"bench_load_{n}"},
                files={"prompt_face": ("tutor.mp4", fh, "video/mp4")},
            )
        if response.status_code != 201:
            raise RuntimeError(f"upload {n}: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = [api.get(f"/api/avatars/{pk}").json()["status"] for pk in ids]
        if "processing" not in states:
            if set(states) != {"inactive"}:
                raise RuntimeError(f"avatars not ready: {states}\n{system.log_tail()}")
            return ids
        time.sleep(1.0)
    raise RuntimeError(f"avatars still processing:\n{system.log_tail()}")


async def run_load(url: str, headers: dict, avatar_ids: list[int], clients: int, seconds: float) -> dict:
    """`clients` independent clients (an httpx client and a connection each), in a loop."""
    import httpx

    paths = {
        "list": lambda: "/api/avatars/list",
        "detail": lambda: f"/api/avatars/{random.choice(avatar_ids)}",
        "preview": lambda: f"/api/avatars/{random.choice(avatar_ids)}/preview",
    }
    kinds = list(paths)
    results: dict[str, list[float]] = {kind: [] for kind in paths}
    errors: dict[str, int] = {}
    state = {"deadline": None}

    async def one(client, kind: str, record: bool) -> None:
        started = time.perf_counter()
        try:
            response = await client.get(paths[kind]())
            await response.aread()
            ok, problem = response.status_code == 200, f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, problem = False, type(exc).__name__
        if record:
            results[kind].append((time.perf_counter() - started) * 1000)
            if not ok:
                errors[f"{kind}: {problem}"] = errors.get(f"{kind}: {problem}", 0) + 1

    async def client_loop(n: int, ready: asyncio.Barrier) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
            await one(client, kinds[n % 3], False)  # connected and warm, not counted
            await ready.wait()
            k = n
            while time.monotonic() < state["deadline"]:
                await one(client, kinds[k % 3], True)
                k += 1

    ready = asyncio.Barrier(clients + 1)
    tasks = [asyncio.ensure_future(client_loop(n, ready)) for n in range(clients)]
    state["deadline"] = time.monotonic() + 3600  # set for real once every client is connected
    await ready.wait()
    started = time.monotonic()
    state["deadline"] = started + seconds
    await asyncio.gather(*tasks)
    return {"results": results, "errors": errors, "elapsed": time.monotonic() - started}


def main() -> int:
    seconds = float(os.environ.get("LOAD_BENCH_SECONDS", "60"))
    clients = int(os.environ.get("LOAD_BENCH_CLIENTS", "200"))
    avatar_count = int(os.environ.get("LOAD_BENCH_AVATARS", "5"))
    system = RunningSystem("load", AVATAR_MAX_PROCESSING_PER_ADMIN="100")
    try:
        api = system.admin_client()
        system.wait_for_engines(api)
        avatar_ids = upload_avatars(system, api, avatar_count)
        print(f"load        system: `launcher run` on :{system.port}, {avatar_count} avatars, {os.cpu_count()} cores")
        # One client alone first: the time the server needs per request, without queueing.
        alone = asyncio.run(run_load(system.url, dict(api.headers), avatar_ids, 1, 3.0))
        outcome = asyncio.run(run_load(system.url, dict(api.headers), avatar_ids, clients, seconds))
    finally:
        system.stop()
    single = [ms for values in alone["results"].values() for ms in values]
    print(
        f"load        1 client alone: {len(single) / alone['elapsed']:.0f} req/s, p50={percentile(single, 50):.1f} ms "
        f"p95={percentile(single, 95):.1f} ms (the service time, without queueing)"
    )
    results, errors, elapsed = outcome["results"], outcome["errors"], outcome["elapsed"]
    every = [ms for values in results.values() for ms in values]
    total_errors = sum(errors.values())
    p50, p95, p99 = (percentile(every, q) for q in (50, 95, 99))
    print(
        f"load        clients={clients} seconds={elapsed:.0f} requests={len(every)} "
        f"throughput={len(every) / elapsed:.0f} req/s"
    )
    print(
        f"load        latency p50={p50:.0f} ms p95={p95:.0f} ms p99={p99:.0f} ms  goal p95<={GOAL_P95_MS:g} ms  "
        f"ratio_to_goal={p95 / GOAL_P95_MS:.2f}  {'OK' if p95 <= GOAL_P95_MS else 'MISSED'}"
    )
    print(
        f"load        errors={total_errors} of {len(every)}  goal={GOAL_ERRORS}  "
        f"{'OK' if total_errors <= GOAL_ERRORS else 'MISSED'}" + (f"  {json.dumps(errors)}" if errors else "")
    )
    for kind, values in results.items():
        print(
            f"load        {kind:<8} requests={len(values)} p50={percentile(values, 50):.0f} ms "
            f"p95={percentile(values, 95):.0f} ms p99={percentile(values, 99):.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
