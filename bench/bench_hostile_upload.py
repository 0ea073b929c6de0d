"""Hostile uploads through the real API to real workers: refused with a reason, memory bounded.

    python bench/bench_hostile_upload.py     (or `python -m tutor_site.launcher bench bench_hostile_upload.py`)

Starts the system as `make run` does (bench_load.RunningSystem: the web server, the live/tts
worker and the prefork jobs worker, on a throw-away DATA_DIR), with the upload limits
lowered (AVATAR_MAX_SECONDS=30, VOICE_MAX_SECONDS=10) so that files "far longer than the
limit" stay quick to make; then sends the media of tests/hardening/test_hostile_media.py:

- through the API: an MKV whose header understates its length (6 s, says 1.5 s), a FLAC
  voice likewise (20 s, says 2 s), and an MKV ten times longer than the limit (300 s, says
  5 s). The web refuses them (the worker never sees them).
- to the worker: the 300 s MKV and a FLAC voice ten times longer than its limit (100 s,
  says 2 s) put in storage in place of an accepted upload's files, then POST .../reprocess,
  as if they had got past the web's checks. The job must end in error with a reason.

The worker processes' peak resident memory (VmHWM from /proc/<pid>/status, sampled every
0.2 s so that a replaced prefork child counts too) must stay under 1 GB whatever the file
claims; the web server's is shown beside it (it holds an accepted upload's body while
the request is read: the 300 s file is 45 MB).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from bench_load import RunningSystem  # noqa: E402

GOAL_PEAK_MB = 1024.0
MAX_SECONDS, VOICE_MAX_SECONDS = 30, 10


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakMemory:
    """Samples VmHWM of the system's processes in the background: the peak per role."""

    def __init__(self, system: RunningSystem):
        self.system = system
        self.peaks_kb: dict[str, int] = {}
        self.first_kb: dict[str, int] = {}  # resident memory when first seen (idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def role(cmdline: str) -> str | None:
        if "celery" in cmdline:
            return "jobs worker" if "jobs@" in cmdline else "live/tts worker"
        if "tutor_site.web_server" in cmdline:
            return "web server"
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid, cmdline in self.system.processes().items():
                role = self.role(cmdline)
                if role:
                    self.peaks_kb[role] = max(self.peaks_kb.get(role, 0), status_kb(pid, "VmHWM"))
                    self.first_kb.setdefault(role, status_kb(pid, "VmRSS"))

    def mb(self, role: str) -> float:
        return self.peaks_kb.get(role, 0) / 1024

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def make_media(folder: Path) -> dict[str, Path]:
    import av

    from tests import media
    from tests.hardening.test_hostile_media import _flac, _understate_flac, _understate_mkv

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["short mkv"] = media.write_video(folder / "short.mkv", media.face_frames(2.0), container_format="matroska")
    lying = media.write_video(folder / "lying.mkv", media.face_frames(6.0), container_format="matroska")
    _understate_mkv(lying, 1.5)
    files["mkv says 1.5 s, lasts 6 s"] = lying
    voice = _flac(folder / "voice.flac", seconds=20)
    _understate_flac(voice, 2)
    files["flac says 2 s, lasts 20 s"] = voice
    files["short voice"] = _flac(folder / "short-voice.flac", seconds=3)
    long_voice = _flac(folder / "long-voice.flac", seconds=10 * VOICE_MAX_SECONDS)
    _understate_flac(long_voice, 2)
    files[f"flac says 2 s, lasts {10 * VOICE_MAX_SECONDS} s"] = long_voice
    # Ten times the limit: the face clip looped, encoded fast (x264 ultrafast).
    long = folder / "long.mkv"
    frames = media.face_frames(4.0)
    with av.open(str(long), mode="w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt, stream.options = "yuv420p", {"preset": "ultrafast"}
        for n in range(10 * MAX_SECONDS * 25):
            frame = av.VideoFrame.from_ndarray(frames[n % len(frames)], format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    _understate_mkv(long, 5.0)
    files[f"mkv says 5 s, lasts {10 * MAX_SECONDS} s"] = long
    return files


def main() -> int:
    system = RunningSystem(
        "hostile",
        AVATAR_MAX_SECONDS=str(MAX_SECONDS),
        VOICE_MAX_SECONDS=str(VOICE_MAX_SECONDS),
        AVATAR_MAX_PROCESSING_PER_ADMIN="100",
    )
    peaks = PeakMemory(system)
    outcomes: list[tuple[str, str, str]] = []
    try:
        api = system.admin_client()
        system.wait_for_engines(api)
        files = make_media(system.data / "hostile")
        long_video = files[f"mkv says 5 s, lasts {10 * MAX_SECONDS} s"]
        long_voice = files[f"flac says 2 s, lasts {10 * VOICE_MAX_SECONDS} s"]
        tutor_id = api.post("/api/tutors/", json={"name": "Hostile"}).json()["id"]
        media_root = system.data / "media"

        def create(name: str, video: Path, voice: Path | None = None):
            handles = {"prompt_face": (video.name, open(video, "rb"), "video/x-matroska")}
            if voice is not None:
                handles["prompt_voice"] = (voice.name, open(voice, "rb"), "audio/flac")
            try:
                return api.post(
                    "/api/avatars/create", data={"tutor_id": str(tutor_id), "name": name}, files=handles, timeout=300
                )
            finally:
                for _name, fh, _type in handles.values():
                    fh.close()

        def finished(avatar_id: int, timeout: float = 600) -> dict:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                body = api.get(f"/api/avatars/{avatar_id}").json()
                if body["status"] != "processing":
                    return body
                time.sleep(0.5)
            raise RuntimeError(f"avatar {avatar_id} still processing:\n{system.log_tail()}")

        # Through the API: refused by the web.
        for n, (case, video, voice) in enumerate(
            [
                ("mkv says 1.5 s, lasts 6 s", files["mkv says 1.5 s, lasts 6 s"], None),
                ("flac says 2 s, lasts 20 s", files["short mkv"], files["flac says 2 s, lasts 20 s"]),
                (f"mkv says 5 s, lasts {10 * MAX_SECONDS} s", long_video, None),
            ]
        ):
            response = create(f"hostile_web_{n}", video, voice)
            detail = response.json().get("detail", "") if response.status_code != 201 else "accepted!"
            outcomes.append((f"web: {case}", f"HTTP {response.status_code}", detail))

        # To the worker: an accepted upload's stored files replaced, then reprocessed.
        accepted = create("hostile_worker", files["short mkv"], files["short voice"])
        accepted.raise_for_status()
        avatar = finished(accepted.json()["id"])
        if avatar["status"] != "inactive":
            raise RuntimeError(f"the accepted upload was not processed: {avatar}")
        source = media_root / f"avatars/{avatar['id']}/source"
        stored_video, stored_voice = next(source.glob("video.*")), next(source.glob("voice.*"))
        for case, target, hostile in (
            (f"mkv says 5 s, lasts {10 * MAX_SECONDS} s", stored_video, long_video),
            (f"flac says 2 s, lasts {10 * VOICE_MAX_SECONDS} s", stored_voice, long_voice),
        ):
            original = target.read_bytes()
            target.write_bytes(hostile.read_bytes())
            started = time.monotonic()
            response = api.post(f"/api/avatars/{avatar['id']}/reprocess")
            response.raise_for_status()
            body = finished(avatar["id"])
            seconds = time.monotonic() - started
            outcomes.append((f"worker: {case}", f"{body['status']} after {seconds:.0f} s", body["error_message"]))
            target.write_bytes(original)
        time.sleep(1.0)  # a last sample
    finally:
        peaks.stop()
        system.stop()

    failures = 0
    for case, result, reason in outcomes:
        refused = result.startswith("HTTP 400") or result.startswith("error")
        failures += not (refused and reason)
        print(f"hostile     {case:<34} {result:<18} {'OK' if refused and reason else 'NOT REFUSED'}  {reason}")
    worker_peak = max(peaks.mb("jobs worker"), peaks.mb("live/tts worker"))
    print(
        "hostile     peak RSS (VmHWM; idle RSS when first seen): "
        + ", ".join(
            f"{role} {peaks.mb(role):.0f} MB ({peaks.first_kb.get(role, 0) / 1024:.0f} MB)"
            for role in ("jobs worker", "live/tts worker", "web server")
        )
    )
    print(
        f"hostile     worker peak={worker_peak:.0f} MB  goal<{GOAL_PEAK_MB:.0f} MB  "
        f"ratio_to_goal={worker_peak / GOAL_PEAK_MB:.2f}  {'OK' if worker_peak < GOAL_PEAK_MB else 'MISSED'}"
    )
    print(f"hostile     refused with a reason: {len(outcomes) - failures} of {len(outcomes)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
