"""Usage analytics benchmark: the usage query over a year of 500 avatars.

    python bench/bench_analytics.py [--avatars 500] [--days 365] [--runs 5]

Builds a database of its own (SQLite in a temporary folder, or `BENCH_DATABASE_URL`): one
admin with 50 tutors of 10 avatars each, every avatar used every day of the year (sessions,
utterances, answers with their latency, renders, errors; a tenth of the avatars also used by
a grantee), written as the day and month totals that `analytics.services.usage_record`
keeps, and the error events (a report reads their kinds). The write path itself is timed
on 1,000 events through `usage_record`. Then it times `GET /api/analytics/usage`'s query
(`analytics.selectors.usage_report`) over the whole year for each group_by: median of the
runs, and its ratio to the 200 ms goal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATABASE_URL"] = (
    os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp(prefix='bench-analytics-')}/bench.sqlite3"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from analytics.models import ALL_AVATARS, Grain, UsageEvent, UsageKind, UsageRollup  # noqa: E402
from analytics.selectors import usage_query_parse, usage_report  # noqa: E402
from analytics.services import latency_bucket, usage_record  # noqa: E402

GOAL_MS = 200.0


def _day_totals(rng: random.Random) -> dict:
    sessions = rng.randint(1, 8)
    answers = rng.randint(0, 6 * sessions)
    totals = {
        "sessions": sessions,
        "session_seconds": sessions * rng.uniform(60, 900),
        "utterances": answers * 3 + sessions,
        "spoken_seconds": answers * rng.uniform(4, 12),
        "answers": answers,
        "renders": rng.randint(0, 2),
        "rendered_seconds": rng.uniform(0, 60),
        "preprocess_jobs": 0,
        "preprocess_seconds": 0.0,
        "errors": int(rng.random() < 0.05),
    }
    for _ in range(answers):
        bucket = latency_bucket(rng.lognormvariate(5.6, 0.35))  # ~270 ms median
        totals[bucket] = totals.get(bucket, 0) + 1
    return totals


def build(avatars: int, days: int) -> tuple:
    from avatars.models import Avatar
    from tutors.services import admin_create, tutor_create

    call_command("migrate", verbosity=0)
    admin, _ = admin_create(email="bench-admin@school.test", password="bench-password-1")
    grantee, _ = admin_create(email="bench-grantee@school.test", password="bench-password-1")
    tutors = [tutor_create(owner=admin, name=f"Tutor {i}") for i in range(max(1, avatars // 10))]
    Avatar.objects.bulk_create(
        Avatar(tutor=tutors[i % len(tutors)], owner=admin, name=f"avatar_{i}", status="inactive")
        for i in range(avatars)
    )
    rows = list(Avatar.objects.filter(owner=admin).values_list("pk", "tutor_id"))
    rng = random.Random(7)
    first_day = dt.date.today() - dt.timedelta(days=days - 1)
    started = time.perf_counter()
    # What usage_record keeps: per (grain, start, tutor, avatar or ALL_AVATARS, actor).
    totals_of: dict = {}
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        for index, (avatar_id, tutor_id) in enumerate(rows):
            actors = (admin.pk, grantee.pk) if index % 10 == 0 else (admin.pk,)
            for actor in actors:
                totals = _day_totals(rng)
                for grain, start in ((Grain.DAY, day), (Grain.MONTH, day.replace(day=1))):
                    for avatar in (avatar_id, ALL_AVATARS):
                        into = totals_of.setdefault((grain, start, tutor_id, avatar, actor), {})
                        for name, value in totals.items():
                            into[name] = into.get(name, 0) + value
    batch = [
        UsageRollup(grain=grain, start=start, tutor_id=tutor_id, avatar_id=avatar, actor_id=actor,
                    owner_id=admin.pk, **totals)
        for (grain, start, tutor_id, avatar, actor), totals in totals_of.items()
    ]  # fmt: skip
    # The errors' own events too: a report reads their kinds from them.
    kinds = ("render", "preprocess", "session_responder", "session_asr")
    errors = [
        UsageEvent(kind=UsageKind.ERROR, at=dt.datetime.combine(start, dt.time(12), tzinfo=dt.UTC), avatar_id=avatar,
                   tutor_id=tutor_id, owner_id=admin.pk, actor_id=actor, extra={"kind": rng.choice(kinds)})
        for (grain, start, tutor_id, avatar, actor), totals in totals_of.items()
        if grain == Grain.DAY and avatar != ALL_AVATARS
        for _ in range(totals.get("errors", 0))
    ]  # fmt: skip
    with transaction.atomic():
        UsageRollup.objects.bulk_create(batch, batch_size=2000)
        UsageEvent.objects.bulk_create(errors, batch_size=2000)
    print(
        f"generated {UsageRollup.objects.filter(grain=Grain.DAY).count():,} day and "
        f"{UsageRollup.objects.filter(grain=Grain.MONTH).count():,} month totals (per avatar and per tutor) "
        f"and {len(errors):,} error events of {avatars} avatars × {days} days "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return admin, rows, first_day


def time_writes(avatar_id: int, actor_id: int, count: int = 1000) -> float:
    rng = random.Random(3)
    kinds = ["session_opened", "session_closed", "utterance", "answer", "render"]
    started = time.perf_counter()
    for _ in range(count):
        usage_record(rng.choice(kinds), avatar_id=avatar_id, actor_id=actor_id, value=rng.uniform(50, 900))
    return 1000 * (time.perf_counter() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--avatars", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    admin, rows, first_day = build(args.avatars, args.days)
    print(f"write: {time_writes(rows[0][0], admin.pk):.2f} ms per usage_record (event + day and month totals)")
    params = {"from": first_day.isoformat(), "to": dt.date.today().isoformat()}
    worst = 0.0
    for group_by in ("day", "avatar", "tutor"):
        query = usage_query_parse({**params, "group_by": group_by})
        report = usage_report(admin, query)  # warm-up
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            usage_report(admin, query)
            times.append(1000 * (time.perf_counter() - started))
        median = statistics.median(times)
        worst = max(worst, median)
        print(
            f"usage query, 1 year, group_by={group_by:<6}: {median:7.1f} ms median "
            f"(max {max(times):.1f}), {len(report['rows'])} rows, "
            f"{report['totals']['sessions']:,} sessions — ratio to the {GOAL_MS:.0f} ms goal {median / GOAL_MS:.2f}",
            flush=True,
        )
    one = usage_query_parse({**params, "avatar_id": str(rows[0][0])})
    started = time.perf_counter()
    usage_report(admin, one)
    print(f"usage query, 1 year, one avatar by day: {1000 * (time.perf_counter() - started):.1f} ms")
    print(f"{'PASS' if worst <= GOAL_MS else 'FAIL'}: slowest group_by {worst:.1f} ms (goal ≤ {GOAL_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
