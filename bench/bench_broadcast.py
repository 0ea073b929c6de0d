"""Classroom mode: how many viewers one broadcast serves at 25 fps on this machine.

    python bench/bench_broadcast.py [--max-viewers 60] [--step 10] [--seconds 6] [--decoding 3]
    (or BROADCAST_BENCH_MAX_VIEWERS / _STEP / _SECONDS / _DECODING with `make bench`)

Starts its own worker (threads pool, as `make run`) and daphne on a throw-away SQLite
database, starts an avatar (../shared/fixtures/sun.mp4, or the astronaut clip), opens a host
session that speaks continuously, opens its broadcast and adds aiortc viewers over
WS /ws/broadcasts/{id}/ step by step (until `--max-viewers`, or a viewer below 15 fps). At
each step it measures, over `--seconds`, every viewer's received video frame rate and the
worker's CPU; the figure is the most viewers for which every step up to it kept every viewer
at >= 24 fps.

The viewers run in this process, on the same 2 cores as the worker. A decoding aiortc
viewer costs about as much CPU as the worker spends on it, so most viewers here count
their video frames from the RTP packets (marker bit = last packet of a frame) without
decrypting them further than SRTP or decoding H.264; `--decoding` of them (the first ones)
decode and keep everything, and their frame rate is reported separately. Goal: >= 30
viewers at >= 24 fps each (25 fps nominal). The load average is printed: figures taken while
other work runs on the machine are noisy.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("REDIS_KEY_PREFIX", "vt-bench-broadcast")
os.environ.setdefault("LIVE_BROADCAST_MAX_VIEWERS", "200")
os.environ.setdefault("LIVE_MAX_SESSION_SECONDS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The same throw-away world (environment, Django, avatar) as the live benchmark.
import bench_live as world

from tests.live.broadcast_client import BroadcastViewer
from tests.live.client import LiveClient, fps_between, loopback_only_ice

TEXT = (
    "Good morning, everyone. Today we are going to talk about the water cycle, and how rain "
    "falls from the clouds, flows into rivers, and returns to the sea. "
)
GOAL_VIEWERS = 30
FULL_RATE = 24.0
STOP_BELOW = 15.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


async def keep_speaking(host: LiveClient, stop: asyncio.Event) -> None:
    """The host says the text again whenever fewer than two are waiting: speech never stops."""
    while not stop.is_set():
        await host.send({"type": "say", "text": TEXT * 3})
        try:
            await asyncio.wait_for(stop.wait(), 12)
        except TimeoutError:
            pass


def rtp_fps(frames: list[tuple[float, int]], start: float, end: float) -> float:
    return sum(1 for t, _ts in frames if start <= t <= end) / (end - start)


async def run(args, avatar, token, daphne, worker_pid) -> None:
    host = LiveClient(daphne.ws_url, avatar.pk, token, keep_frames=False)
    assert (await host.connect())["type"] == "answer"
    await host.wait_event(lambda e: e.get("state") == "connected", 30)
    await host.send({"type": "broadcast"})
    opened = await host.wait_event(lambda e: e["type"] in ("broadcast", "error"), 20)
    assert opened["type"] == "broadcast", opened
    stop = asyncio.Event()
    speaker = asyncio.ensure_future(keep_speaking(host, stop))
    await host.wait_event(lambda e: e.get("type") == "speaking_started", 30)

    # Without viewers: the host session alone (nothing is encoded for a broadcast nobody watches).
    await asyncio.sleep(2.0)
    cpu0, t0 = cpu_seconds(worker_pid), time.monotonic()
    await asyncio.sleep(args.seconds)
    baseline = (cpu_seconds(worker_pid) - cpu0) / (time.monotonic() - t0)
    print(
        f"viewers   0: host={fps_between(host.recorder.video, t0, time.monotonic()):.1f} fps  "
        f"worker CPU={baseline * 100:.0f}% of a core (the host session speaking)  load avg={os.getloadavg()[0]:.2f}",
        flush=True,
    )

    viewers: list[BroadcastViewer] = []
    best = 0
    target = args.step
    while target <= args.max_viewers:
        new = [
            BroadcastViewer(
                daphne.ws_url,
                opened["broadcast_id"],
                opened["viewer_token"],
                keep_frames=False,
                decode=len(viewers) + i < args.decoding,
            )
            for i in range(target - len(viewers))
        ]
        answers = await asyncio.gather(*(v.connect() for v in new))
        refused = [a.get("detail") for a in answers if a.get("type") != "answer"]
        viewers += new
        if refused:
            print(f"viewers {target}: refused: {refused[:2]}")
            break
        await asyncio.gather(*(v.wait_event(lambda e: e.get("state") == "connected", 60) for v in new))
        await asyncio.sleep(2.0)  # first keyframe, queues settled
        load = os.getloadavg()[0]
        cpu0, own0, t0 = cpu_seconds(worker_pid), own_cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.seconds)
        t1 = time.monotonic()
        worker_cpu = (cpu_seconds(worker_pid) - cpu0) / (t1 - t0)
        viewers_cpu = (own_cpu_seconds() - own0) / (t1 - t0)
        counted = [rtp_fps(v.rtp_frames, t0, t1) for v in viewers if not v.decode]
        decoded = [fps_between(v.recorder.video, t0, t1) for v in viewers if v.decode]
        host_fps = fps_between(host.recorder.video, t0, t1)
        rates = counted + decoded
        ok = min(rates) >= FULL_RATE
        print(
            f"viewers {target:3d}: fps min={min(rates):.1f} mean={statistics.mean(rates):.1f}"
            f"{f' decoding viewers min={min(decoded):.1f}' if decoded else ''}  host={host_fps:.1f}  "
            f"worker CPU={worker_cpu * 100:.0f}% of a core  "
            f"viewers' CPU (this process)={viewers_cpu * 100:.0f}%  load avg={load:.2f}  "
            f"{'full rate' if ok else 'below 24 fps'}",
            flush=True,
        )
        if ok and best == target - args.step:
            best = target
        if min(rates) < STOP_BELOW:  # the trend is clear; more viewers only take longer
            break
        target += args.step
    stop.set()
    speaker.cancel()
    await asyncio.gather(*(v.close(bye=False) for v in viewers), return_exceptions=True)
    await host.close()
    print(
        f"classroom viewers at >= {FULL_RATE:.0f} fps: {best}  goal>={GOAL_VIEWERS}  ratio={best / GOAL_VIEWERS:.2f}  "
        f"(2 cores shared by the worker, daphne and the viewers; {args.decoding} decoding viewers, the rest count "
        "RTP frames)"
    )


# --- the fan-out alone: what one more viewer costs the worker -------------------------------
# Beside the system test above, whose figures depend on what else the 2 cores run: the
# broadcast's encoder and viewer peers in this process (fed the avatar's own frames at 25
# fps), the viewers in a child process that counts their RTP frames. CPU seconds are what
# each side used, so the cost per viewer holds however loaded the machine is.


class HostSessionStandIn:
    """Stands in for the host's live session: the fan-out alone is measured."""

    id = "h" * 32
    closed = False

    def __init__(self):
        self.listeners: list = []

    async def emit(self, event: dict) -> None:
        pass


class RuntimeStandIn:
    """Stands in for the worker's runtime (no channel layer: events go nowhere)."""

    def __init__(self):
        self.broadcasts: dict = {}
        self.layer = self

    async def group_send(self, group: str, message: dict) -> None:
        pass

    async def send(self, channel: str, message: dict) -> None:
        pass


def counting_viewers(conn, n: int, seconds: float) -> None:
    """Child process: n aiortc viewers that count video frames from RTP marker bits."""
    import logging

    import aioice.ice

    logging.getLogger("aioice").setLevel(logging.WARNING)
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]

    async def main():
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        frames = [[] for _ in range(n)]
        pcs = []
        for i in range(n):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            for transceiver in pc.getTransceivers():

                async def handle(packet, arrival_time_ms, _frames=frames[i], _video=transceiver.kind == "video"):
                    if _video and packet.marker:
                        _frames.append(time.monotonic())

                transceiver.receiver._handle_rtp_packet = handle
            await pc.setLocalDescription(await pc.createOffer())
            conn.send(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=conn.recv(), type="answer"))
            pcs.append(pc)
        conn.send("connected")
        await asyncio.sleep(3)
        t0, c0, n0 = time.monotonic(), own_cpu_seconds(), [len(f) for f in frames]
        await asyncio.sleep(seconds)
        t1 = time.monotonic()
        rates = [(len(f) - k) / (t1 - t0) for f, k in zip(frames, n0, strict=True)]
        conn.send((min(rates), statistics.mean(rates), (own_cpu_seconds() - c0) / (t1 - t0)))
        for pc in pcs:
            await pc.close()

    asyncio.run(main())


async def fan_out_alone(n: int, seconds: float, images) -> dict:
    import multiprocessing

    import numpy as np

    from lipsync_worker.live.broadcast import broadcast_join, broadcast_open

    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=counting_viewers, args=(child, n, seconds))
    proc.start()
    loop = asyncio.get_running_loop()
    runtime, host = RuntimeStandIn(), HostSessionStandIn()
    runtime.sessions = {host.id: host}
    opened = await broadcast_open(runtime, {"session_id": host.id})
    broadcast = runtime.broadcasts[opened["broadcast_id"]]
    for _ in range(n):
        sdp = await loop.run_in_executor(None, parent.recv)
        answer = await broadcast_join(runtime, {"broadcast_id": broadcast.id, "sdp": sdp, "events_to": None})
        parent.send(answer["sdp"])
    assert await loop.run_in_executor(None, parent.recv) == "connected"
    pcm = (np.sin(np.arange(640) / 4) * 4000).astype(np.int16)
    done = loop.run_in_executor(None, parent.recv)
    start, tick, mark = loop.time(), 0, None
    while not done.done():
        await asyncio.sleep(max(0.0, start + tick * 0.04 - loop.time()))
        broadcast.tick(images[tick % len(images)], pcm, tick)
        tick += 1
        if tick == 50:  # the receivers measure from about here
            mark = (time.monotonic(), own_cpu_seconds(), dict(broadcast.encoder.stats))
    t1, c1, stats = time.monotonic(), own_cpu_seconds(), broadcast.encoder.stats
    low, mean, viewers_cpu = done.result()
    t0, c0, s0 = mark
    encode_cpu = stats["encode_cpu_seconds"] - s0["encode_cpu_seconds"]
    packets = stats["rtp_packets_out"] - s0["rtp_packets_out"]
    video_frames = stats["video_frames_out"] - s0["video_frames_out"]
    audio_packets = stats["audio_packets_out"] - s0["audio_packets_out"]
    frames = stats["frames"] - s0["frames"]
    await broadcast.end("bench done")
    proc.join(10)
    sender_cpu = (c1 - c0) / (t1 - t0)
    return {
        "n": n,
        "fps_min": low,
        "fps_mean": mean,
        "sender_cpu": sender_cpu,
        "encode_ms": 1000 * encode_cpu / max(1, frames),
        "per_packet_us": 1e6 * ((c1 - c0) - encode_cpu) / max(1, packets),
        "packets_per_viewer": packets / (t1 - t0) / n,
        # RTP packets a viewer gets a second at 25 fps: its frames' packets plus 25 of sound.
        "packets_at_25": 25 * ((packets - audio_packets) / max(1, video_frames) + 1),
        "viewers_cpu": viewers_cpu,
    }


async def fan_out_figures(args) -> None:
    from lipsync_worker.assets import AvatarAssets

    assets = AvatarAssets.from_dir(world.BENCH_DATA / "assets")
    images = [assets.frame(i) for i in range(min(assets.frame_count, 100))]
    print(f"the fan-out alone (encoder + viewer peers here, {args.alone} counting viewers in a child process):")
    r = await fan_out_alone(args.alone, args.seconds, images)
    per_viewer_25 = r["per_packet_us"] / 1e6 * r["packets_at_25"]
    print(
        f"  fps min={r['fps_min']:.1f} mean={r['fps_mean']:.1f}  this process {r['sender_cpu'] * 100:.0f}% of a core "
        f"(encoding {r['encode_ms']:.1f} ms CPU a frame, once)  {r['packets_per_viewer']:.0f} RTP packets/s a viewer "
        f"at {r['per_packet_us']:.0f} us CPU each ({r['packets_at_25']:.0f}/s at 25 fps)  "
        f"viewers' process {r['viewers_cpu'] * 100:.0f}%  "
        f"load avg={os.getloadavg()[0]:.2f}"
    )
    encode = r["encode_ms"] / 1000 * 25
    print(
        f"  worker CPU per viewer at 25 fps: {per_viewer_25 * 100:.2f}% of a core, plus {encode * 100:.0f}% once for "
        f"encoding: one core (the runtime's event loop sends every viewer's packets) serves "
        f"~{int(1.0 / per_viewer_25) if per_viewer_25 > 0 else 0} viewers  goal>={GOAL_VIEWERS}  "
        f"ratio={(1.0 / per_viewer_25 if per_viewer_25 > 0 else 0) / GOAL_VIEWERS:.2f}  (CPU per packet measured, "
        "viewers per core derived from it)"
    )


def system_figures(args, avatar, token) -> None:
    from django.conf import settings

    from tests.conftest import DaphneServer, WorkerProcess

    env = dict(os.environ, PYTHONUNBUFFERED="1", REDIS_URL=settings.REDIS_URL, LOG_LEVEL="WARNING")
    worker = WorkerProcess(env, world.BENCH_DATA / "worker.log", "bench")
    daphne = DaphneServer(env, world.BENCH_DATA / "daphne.log")
    try:
        world.start_over_http(daphne, avatar.pk, token)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores)")
        asyncio.run(run(args, avatar, token, daphne, worker.proc.pid))
    finally:
        daphne.stop()
        worker.stop()


def main():
    parser = argparse.ArgumentParser()
    env = os.environ.get
    parser.add_argument("--max-viewers", type=int, default=int(env("BROADCAST_BENCH_MAX_VIEWERS", 60)))
    parser.add_argument("--step", type=int, default=int(env("BROADCAST_BENCH_STEP", 10)))
    parser.add_argument("--seconds", type=float, default=float(env("BROADCAST_BENCH_SECONDS", 6)))
    parser.add_argument("--decoding", type=int, default=int(env("BROADCAST_BENCH_DECODING", 3)))
    parser.add_argument("--alone", type=int, default=int(env("BROADCAST_BENCH_ALONE_VIEWERS", 20)))
    args = parser.parse_args()
    import logging

    logging.getLogger("aioice").setLevel(logging.WARNING)  # one line per ICE check of each viewer otherwise
    logging.getLogger("lipsync_worker").setLevel(logging.WARNING)
    loopback_only_ice()
    avatar, token = world.setup_world("bench_broadcast")

    if args.max_viewers > 0:  # 0: the fan-out figures only
        system_figures(args, avatar, token)
    if args.alone:
        asyncio.run(fan_out_figures(args))


if __name__ == "__main__":
    main()
