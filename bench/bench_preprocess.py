"""Preprocessing speed and memory, and avatar-list latency.

    python bench/bench_preprocess.py [VIDEO]

VIDEO defaults to ../shared/fixtures/sun.mp4 when present, else a clip made from
skimage's astronaut. Goal: <= 0.5 s of processing per second of 25 fps video (2 cores).
"""

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DATA = Path(tempfile.mkdtemp(prefix="vt-bench-"))
os.environ["DATA_DIR"] = str(BENCH_DATA)
os.environ.pop("DATABASE_URL", None)  # a throw-away SQLite database
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")

import django  # noqa: E402

django.setup()

GOAL_SECONDS_PER_SECOND = 0.5


def bench_preprocess(video: Path) -> None:
    from lipsync_worker.asset_pipeline import preprocess_video

    started = time.perf_counter()
    result = preprocess_video(video, BENCH_DATA / "assets", expected_seconds=10)
    elapsed = time.perf_counter() - started
    seconds_of_video = result.frame_count / 25
    ratio = elapsed / seconds_of_video
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"preprocess  video={video.name} {result.width}x{result.height} frames={result.frame_count} "
        f"({seconds_of_video:.1f} s)"
    )
    print(
        f"preprocess  wall={elapsed:.2f} s  seconds_per_video_second={ratio:.3f}  "
        f"goal<={GOAL_SECONDS_PER_SECOND}  ratio_to_goal={ratio / GOAL_SECONDS_PER_SECOND:.2f}  "
        f"{'OK' if ratio <= GOAL_SECONDS_PER_SECOND else 'MISSED'}"
    )
    print(f"preprocess  peak_rss={peak_mb:.0f} MB  face_ratio={result.face_ratio:.2f}")


def bench_list_latency(avatars: int = 300, requests: int = 100) -> None:
    from django.core.management import call_command
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from avatars.models import Avatar
    from tutors.services import admin_create, tutor_create

    call_command("migrate", verbosity=0)
    user, _ = admin_create(email="bench@bench.test", password="bench-password")
    other, _ = admin_create(email="other@bench.test", password="bench-password")
    mine, theirs = tutor_create(owner=user, name="Bench"), tutor_create(owner=other, name="Other")
    Avatar.objects.bulk_create(
        [Avatar(tutor=mine if i % 2 else theirs, name=f"bench_{i}", status="inactive") for i in range(avatars)]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    client.get("/api/avatars/list")  # warm
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        response = client.get("/api/avatars/list")
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200 and response.json()["total"] == avatars // 2
    times.sort()
    print(
        f"list        avatars_visible={avatars // 2} (of {avatars})  p50={times[len(times) // 2]:.1f} ms  "
        f"p95={times[int(len(times) * 0.95)]:.1f} ms  (in-process, SQLite, 100 per page)"
    )


def main() -> None:
    if len(sys.argv) > 1:
        video = Path(sys.argv[1])
    elif (BASE_DIR.parent / "shared" / "fixtures" / "sun.mp4").exists():
        video = BASE_DIR.parent / "shared" / "fixtures" / "sun.mp4"
    else:
        from tests import media

        video = media.write_video(BENCH_DATA / "astronaut.mp4", media.face_frames(10.0, size=(576, 768)))
    bench_preprocess(video)
    bench_list_latency()


if __name__ == "__main__":
    main()
