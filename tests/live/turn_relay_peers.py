"""Relay-only media through coturn, run by tests/live/test_turn_relay.py inside a private
network namespace (`unshare -n`: nothing but its own loopback, so no path but the relay
could be taken by mistake, and no port clashes with the machine's own services).

It starts Debian's turnserver with the repository's deploy/coturn/turnserver.conf (plus
`--allow-loopback-peers`, both peers being on this namespace's loopback), then:
- the worker side: `lipsync_worker.live.peer.Peer`, configured by the project's own
  settings (TURN_URLS, TURN_SECRET, WEBRTC_ICE_TRANSPORT_POLICY=relay) through
  `lipsync_worker.live.ice`, sending a 25 fps video of one colour and audio;
- the viewer side: an aiortc peer or Debian's chromium (Playwright), configured with what
  the web app hands a viewer (`contracts.ice_servers.ice_servers_grant`, the talk page's
  iceServers and iceTransportPolicy), receiving.
It prints one JSON line: the candidate types each side offered, the candidate pair each
side selected, the frames the viewer received and their colour, the connection states.

Usage: turn_relay_peers.py --workdir DIR --viewer aiortc|chromium [--viewer-secret WRONG]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
TURN_CONF = BASE_DIR / "deploy" / "coturn" / "turnserver.conf"
TURN_PORT = 3478
# What the worker sends: one colour (BGR), so the viewer can tell it is our video.
COLOUR_BGR = (40, 160, 220)
WIDTH, HEIGHT = 320, 240
VIEWER_IDENTITY = "token-4242"
WORKDIR = Path(".")


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def start_coturn(workdir: Path, secret: str) -> subprocess.Popen:
    log_file = (workdir / "turnserver.log").open("w")
    process = subprocess.Popen(
        [
            "turnserver",
            "-c",
            str(TURN_CONF),
            f"--static-auth-secret={secret}",
            "--allow-loopback-peers",
            "--log-file=stdout",
            "--verbose",  # each allocation and permission, with its username
            f"--pidfile={workdir / 'turnserver.pid'}",
            f"--userdb={workdir / 'turndb'}",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"turnserver exited with {process.returncode}; see {workdir / 'turnserver.log'}")
        if _stun_answers("127.0.0.1", TURN_PORT):
            return process
    process.kill()
    raise SystemExit("turnserver did not answer STUN on 127.0.0.1:3478 within 15 s")


def _stun_answers(host: str, port: int) -> bool:
    """A STUN Binding request gets an answer (an error one too: secure-stun wants auth)."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, secrets.token_bytes(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(request, (host, port))
            data, _ = sock.recvfrom(2048)
        except OSError:
            return False
    return len(data) >= 20 and data[8:20] == request[8:20]


def candidate_types(sdp: str) -> list[str]:
    return sorted(set(re.findall(r"^a=candidate:.* typ (\S+)", sdp, re.MULTILINE)))


def nominated_pair(pc) -> list[str] | None:
    """[local type, remote type] of the pair aioice nominated for the first transport."""
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport or transceiver.sender.transport
        if transport is None:
            continue
        pairs = transport.transport.iceGatherer._connection._nominated
        if pairs:
            pair = pairs[min(pairs)]
            return [pair.local_candidate.type, pair.remote_candidate.type]
    return None


class Worker:
    """The worker's side, as the lip-sync worker builds it (Peer, ice.py's configuration)."""

    def __init__(self):
        from lipsync_worker.live.ice import install_host_addresses
        from lipsync_worker.live.peer import Peer

        install_host_addresses()
        self.states: list[str] = []
        self.peer = Peer(on_state=self._state, on_connect_timeout=self._timeout, on_microphone=lambda track: None)
        self._feeding: asyncio.Task | None = None

    async def _state(self, state: str) -> None:
        self.states.append(state)

    async def _timeout(self) -> None:
        self.states.append("connect-timeout")

    async def answer(self, offer_sdp: str) -> str:
        import numpy as np

        from lipsync_worker.live.frames import sent_picture

        sdp = await self.peer.answer(offer_sdp)
        image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        image[:] = COLOUR_BGR
        picture = sent_picture(image, (WIDTH, HEIGHT))
        t = np.arange(640) / 16000
        pcm = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)

        async def feed():
            tick, start = 0, time.monotonic()
            while True:
                self.peer.show(picture, pcm, tick)
                tick += 1
                await asyncio.sleep(max(0.0, start + tick / 25 - time.monotonic()))

        self._feeding = asyncio.get_running_loop().create_task(feed())
        return sdp

    async def close(self) -> None:
        if self._feeding is not None:
            self._feeding.cancel()
        await self.peer.close()


def viewer_grant(viewer_secret: str | None) -> dict:
    """What the web app hands the viewer; with `viewer_secret`, credentials made from a
    secret coturn does not know (a stolen or stale configuration)."""
    from contracts.ice_servers import ice_servers_grant, turn_credentials

    grant = ice_servers_grant(VIEWER_IDENTITY)
    if viewer_secret is not None:
        for server in grant["ice_servers"]:
            if "username" in server:
                server["username"], server["credential"] = turn_credentials(VIEWER_IDENTITY, secret=viewer_secret)
    return grant


async def run_aiortc_viewer(worker: Worker, grant: dict, seconds: float) -> dict:
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    config = RTCConfiguration(
        iceServers=[RTCIceServer(**server) for server in grant["ice_servers"]],
        iceTransportPolicy=RTCIceTransportPolicy(grant["ice_transport_policy"]),
    )
    pc = RTCPeerConnection(config)
    states: list[str] = []
    frames: list = []
    colours: list = []

    @pc.on("connectionstatechange")
    def _changed():
        states.append(pc.connectionState)

    async def receive(track):
        while True:
            frame = await track.recv()
            frames.append(frame.pts)
            if len(colours) < 200:
                colours.append(frame.to_ndarray(format="bgr24").reshape(-1, 3).mean(axis=0).tolist())

    receivers: list[asyncio.Task] = []

    @pc.on("track")
    def _track(track):
        if track.kind == "video":
            receivers.append(asyncio.get_running_loop().create_task(receive(track)))

    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    answer = await worker.answer(offer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and pc.connectionState != "failed" and "failed" not in worker.states:
        await asyncio.sleep(0.1)
    result = {
        "viewer": "aiortc",
        "offer_sdp": offer,
        "answer_sdp": answer,
        "offer_candidates": candidate_types(offer),
        "answer_candidates": candidate_types(answer),
        "viewer_pair": nominated_pair(pc),
        "worker_pair": nominated_pair(worker.peer.pc),
        "viewer_states": states,
        "worker_states": list(worker.states),
        "frames": len(frames),
        "colour_bgr": [round(sum(c[i] for c in colours) / len(colours), 1) for i in range(3)] if colours else None,
    }
    for task in receivers:
        task.cancel()
    await pc.close()
    return result


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    # The namespace has nothing but loopback, which chromium otherwise does not gather on.
    "--allow-loopback-in-peer-connection",
]

# The talk page's way (static/avatars/talk.js): iceServers and iceTransportPolicy as the web
# app hands them, recvonly video and audio, the offer sent once gathering is complete.
OFFER_JS = """async (grant) => {
  const pc = new RTCPeerConnection({iceServers: grant.ice_servers, iceTransportPolicy: grant.ice_transport_policy});
  window.pc = pc; window.states = [];
  pc.addEventListener("connectionstatechange", () => window.states.push(pc.connectionState));
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; document.body.appendChild(video);
  const stream = new MediaStream();
  pc.addEventListener("track", (e) => { stream.addTrack(e.track); video.srcObject = stream; });
  window.video = video;
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 5000);
  });
  return pc.localDescription.sdp;
}"""

REPORT_JS = """async () => {
  const stats = await window.pc.getStats();
  let pairId = null, framesDecoded = 0;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
    if (r.type === "inbound-rtp" && r.kind === "video") framesDecoded = r.framesDecoded || 0;
  });
  let pair = null;
  if (pairId) {
    const p = stats.get(pairId);
    pair = [stats.get(p.localCandidateId).candidateType, stats.get(p.remoteCandidateId).candidateType];
  }
  let colour = null;
  const v = window.video;
  if (v.videoWidth) {
    const canvas = document.createElement("canvas");
    canvas.width = v.videoWidth; canvas.height = v.videoHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(v, 0, 0);
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let r = 0, g = 0, b = 0, n = 0;
    for (let i = 0; i < d.length; i += 4 * 97) { r += d[i]; g += d[i + 1]; b += d[i + 2]; n++; }
    colour = [b / n, g / n, r / n];
  }
  return {pair, framesDecoded, colour, states: window.states, state: window.pc.connectionState};
}"""


async def run_chromium_viewer(worker: Worker, grant: dict, seconds: float) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.set_content("<!doctype html><title>viewer</title><body></body>")
            offer = await page.evaluate(OFFER_JS, grant)
            answer = await worker.answer(offer)
            await page.evaluate("(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", answer)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and "failed" not in worker.states:
                if await page.evaluate("window.pc.connectionState") == "failed":
                    break
                await asyncio.sleep(0.2)
            report = await page.evaluate(REPORT_JS)
        finally:
            await browser.close()
    return {
        "viewer": "chromium",
        "offer_sdp": offer,
        "answer_sdp": answer,
        "offer_candidates": candidate_types(offer),
        "answer_candidates": candidate_types(answer),
        "viewer_pair": report["pair"],
        "worker_pair": nominated_pair(worker.peer.pc),
        "viewer_states": report["states"],
        "worker_states": list(worker.states),
        "frames": report["framesDecoded"],
        "colour_bgr": [round(c, 1) for c in report["colour"]] if report["colour"] else None,
    }


async def session(viewer: str, viewer_secret: str | None, seconds: float) -> dict:
    worker = Worker()
    try:
        grant = viewer_grant(viewer_secret)
        run = run_chromium_viewer if viewer == "chromium" else run_aiortc_viewer
        result = await run(worker, grant, seconds)
        for name in ("offer", "answer"):  # for whoever reads a failure
            (WORKDIR / f"{name}.sdp").write_text(result.pop(f"{name}_sdp"))
        result["grant_policy"] = grant["ice_transport_policy"]
        result["grant_username"] = next((s["username"] for s in grant["ice_servers"] if "username" in s), None)
        return result
    finally:
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--viewer", choices=("aiortc", "chromium"), default="aiortc")
    parser.add_argument("--viewer-secret", default=None, help="make the viewer's credentials from this secret")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    global WORKDIR
    WORKDIR = args.workdir

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    secret = secrets.token_urlsafe(24)
    coturn = start_coturn(args.workdir, secret)
    try:
        # The project's settings, as an operator would set them for relay-only sessions.
        os.environ.update(
            TURN_URLS=f"turn:127.0.0.1:{TURN_PORT}?transport=udp",
            TURN_SECRET=secret,
            TURN_TTL="600",
            WEBRTC_ICE_TRANSPORT_POLICY="relay",
            WEBRTC_HOST_ADDRESSES="127.0.0.1",
            WEBRTC_ICE_SERVERS="",
            DJANGO_SETTINGS_MODULE="tutor_site.worker_settings",  # the lip-sync worker's
        )
        sys.path.insert(0, str(BASE_DIR))
        import django

        django.setup()
        result = asyncio.run(session(args.viewer, args.viewer_secret, args.seconds))
    finally:
        coturn.terminate()
        try:
            coturn.wait(timeout=5)
        except subprocess.TimeoutExpired:
            coturn.kill()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
