"""Usage analytics: recorded through the real services, read back through the API and its
CSV, scoped per role (tests/roles.py's world), with clear 400s for bad parameters."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from tests.roles import ROLES, world_fixture  # noqa: F401 (the `world` fixture)

pytestmark = pytest.mark.django_db

TODAY = dt.datetime.now(dt.UTC).date()


def _session(avatar, by, seconds: float, at=None):
    from analytics.services import usage_record

    usage_record("session_opened", avatar_id=avatar.pk, actor_id=by.pk, at=at)
    usage_record("session_closed", avatar_id=avatar.pk, actor_id=by.pk, value=seconds, at=at)


@pytest.fixture
def used(world):
    """Usage of the world's avatars: the owner side's, two grantees', a render done for one
    grantee (through the real render services), a failed render and a failed preprocessing."""
    from analytics.services import usage_answer, usage_render_requested
    from avatars import render_services
    from avatars.models import Avatar, AvatarRender
    from avatars.services import avatar_preprocess_failed

    users = world.users
    _session(world.avatar, users["admin"], 60)
    _session(world.avatar, users["grantee_use"], 120)
    _session(world.avatar, users["grantee_manage"], 30)
    _session(world.ben_avatar, users["admin"], 90)
    usage_answer(
        world.avatar.pk, opened_by=users["grantee_use"].pk, token_id=None, first_frame_ms=300, interrupted=False
    )
    done = AvatarRender.objects.create(avatar=world.avatar, text="Hello.", task_id="t-done")
    usage_render_requested(done.pk, users["grantee_use"].pk)
    assert render_services.render_succeeded(done.pk, "t-done", video_path="x/clip.mp4", frame_count=75, duration=3.0)
    failed = AvatarRender.objects.create(avatar=world.avatar, text="Hello.", task_id="t-failed")
    usage_render_requested(failed.pk, users["admin"].pk)
    assert render_services.render_failed(failed.pk, "t-failed", "The speech is empty.")
    Avatar.objects.filter(pk=world.ben_avatar.pk).update(status="processing", task_id="t-pre")
    assert avatar_preprocess_failed(world.ben_avatar.pk, "t-pre", "No face found.")
    return world


def _usage(world, role, **params):
    response = world.client(role).get("/api/analytics/usage", params)
    assert response.status_code == 200, (role, response.content)
    return response.json()


def _by_avatar(world, role) -> dict:
    return {row["avatar_name"]: row for row in _usage(world, role, group_by="avatar")["rows"]}


def test_totals_are_what_happened_by_avatar_tutor_and_day(used):
    rows = _by_avatar(used, "admin")
    secret, ben = rows["secret_avatar"], rows["ben_avatar"]
    assert (secret["sessions"], secret["session_minutes"]) == (3, 3.5)
    assert (secret["renders"], secret["rendered_minutes"], secret["errors"]) == (1, 0.05, 1)
    assert (secret["answers"], ben["sessions"], ben["session_minutes"], ben["errors"]) == (1, 1, 1.5, 1)
    assert 250 <= secret["answer_latency_p50_ms"] <= 350
    assert list(rows) == ["secret_avatar", "ben_avatar"]  # most sessions first

    tutors = {row["tutor_name"]: row for row in _usage(used, "admin", group_by="tutor")["rows"]}
    assert tutors["Ms Ada"]["sessions"] == 3 and tutors["Mr Ben"]["sessions"] == 1

    by_day = _usage(used, "admin")
    assert by_day["group_by"] == "day" and len(by_day["rows"]) == 30  # the last 30 days by default
    assert by_day["rows"][-1]["day"] == TODAY.isoformat()
    assert by_day["rows"][-1]["sessions"] == 4 and sum(r["sessions"] for r in by_day["rows"]) == 4
    assert by_day["totals"]["session_minutes"] == 5.0 and by_day["totals"]["errors"] == 2
    assert by_day["totals"]["errors_by_kind"] == {"preprocess": 1, "render": 1}
    assert _usage(used, "admin", avatar_id=used.avatar.pk)["totals"]["errors_by_kind"] == {"render": 1}


def test_each_role_sees_its_own_usage(used):
    assert set(_by_avatar(used, "tutor")) == {"secret_avatar"}
    assert _by_avatar(used, "tutor")["secret_avatar"]["sessions"] == 3  # the owner side sees all of it
    assert set(_by_avatar(used, "other_tutor")) == {"ben_avatar"}
    # A grantee sees only what it did with the shared avatar: its session, its render.
    carol = _by_avatar(used, "grantee_use")["secret_avatar"]
    assert (carol["sessions"], carol["session_minutes"], carol["renders"], carol["answers"]) == (1, 2.0, 1, 1)
    assert carol["errors"] == 0  # the failed render was the admin's
    assert _usage(used, "grantee_use")["totals"]["errors_by_kind"] == {}
    assert _usage(used, "tutor")["totals"]["errors_by_kind"] == {"render": 1}
    dee = _by_avatar(used, "grantee_manage")["secret_avatar"]
    assert (dee["sessions"], dee["session_minutes"], dee["renders"]) == (1, 0.5, 0)
    for role in ("revoked", "other_admin"):
        assert _usage(used, role, group_by="avatar")["rows"] == []
        assert _usage(used, role)["totals"]["sessions"] == 0
    # Per-tutor totals (day, tutor) and per-avatar totals (avatar) say the same, for every role.
    for role in ROLES:
        totals = [_usage(used, role, group_by=group_by)["totals"] for group_by in ("day", "avatar", "tutor")]
        assert totals[0] == totals[1] == totals[2], role


def test_filters_name_only_what_the_role_sees(used):
    secret, tutor = used.avatar.pk, used.tutor.pk
    assert _usage(used, "admin", avatar_id=secret)["totals"]["sessions"] == 3
    assert _usage(used, "admin", tutor_id=used.other_tutor.pk)["totals"]["sessions"] == 1
    assert _usage(used, "grantee_use", avatar_id=secret)["totals"]["sessions"] == 1
    for role, params in (
        ("other_admin", {"avatar_id": secret}),
        ("other_admin", {"tutor_id": tutor}),
        ("grantee_use", {"tutor_id": tutor}),  # the owner's tutor is not the grantee's to see
        ("other_tutor", {"avatar_id": secret}),
    ):
        response = used.client(role).get("/api/analytics/usage", params)
        assert response.status_code == 404, (role, params)
        assert "Secret" not in response.content.decode()


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"from": "2026-13-01"}, "from", "YYYY-MM-DD"),
        ({"to": "yesterday"}, "to", "YYYY-MM-DD"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "from", "must not be after"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from", "longer than"),
        ({"group_by": "week"}, "group_by", "day, avatar, tutor"),
        ({"avatar_id": "abc"}, "avatar_id", "whole number"),
        ({"tutor_id": "-1"}, "tutor_id", "whole number"),
    ],
)
def test_bad_parameters_are_400_naming_them(world, params, field, words):
    for url in ("/api/analytics/usage", "/api/analytics/usage.csv"):
        response = world.client("admin").get(url, params)
        assert response.status_code == 400, (url, params, response.content)
        body = response.json()
        assert body["field"] == field and words in body["detail"], body


def test_csv_is_the_same_rows_as_an_attachment(used):
    response = used.client("admin").get("/api/analytics/usage.csv", {"group_by": "avatar"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="usage-avatar-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["avatar_name"] for r in rows] == ["secret_avatar", "ben_avatar"]
    assert rows[0]["sessions"] == "3" and rows[0]["session_minutes"] == "3.5"
    assert list(rows[0])[:3] == ["avatar_id", "avatar_name", "sessions"]
    by_day = used.client("admin").get("/api/analytics/usage.csv").content.decode().splitlines()
    assert by_day[0].startswith("day,sessions,") and len(by_day) == 31
    assert (
        used.client("other_admin").get("/api/analytics/usage.csv", {"group_by": "avatar"}).content.decode().count("\n")
        == 1
    )  # the header only


def test_month_and_day_totals_add_up_the_same(world):
    """A range with partial months at both ends is read from month and day totals: the sums
    per avatar equal the sums of the days."""
    from analytics.services import usage_answer

    admin = world.users["admin"]
    start = dt.datetime(2026, 1, 20, 12, tzinfo=dt.UTC)
    for offset in range(0, 80, 3):  # 20 Jan .. 8 Apr
        at = start + dt.timedelta(days=offset)
        _session(world.avatar, admin, 60 + offset, at=at)
    for latency in range(100, 1100, 10):  # 100 answers, 100..1090 ms
        usage_answer(world.avatar.pk, opened_by=admin.pk, token_id=None, first_frame_ms=latency, interrupted=False)
    for date_from, date_to in (
        ("2026-01-25", "2026-04-05"),
        ("2026-02-01", "2026-03-31"),
        ("2026-02-03", "2026-02-20"),
    ):
        params = {"from": date_from, "to": date_to}
        days = _usage(world, "admin", **params)
        (avatar,) = _usage(world, "admin", group_by="avatar", **params)["rows"]
        assert avatar["sessions"] == sum(r["sessions"] for r in days["rows"]) == days["totals"]["sessions"] > 0
        assert avatar["session_minutes"] == pytest.approx(days["totals"]["session_minutes"])
    today = _usage(world, "admin", avatar_id=world.avatar.pk)["totals"]
    # Exact: p50 595 ms, p95 1045 ms; the histogram is within its bucket width (±17%).
    assert 595 * 0.83 <= today["answer_latency_p50_ms"] <= 595 * 1.17
    assert 1045 * 0.83 <= today["answer_latency_p95_ms"] <= 1045 * 1.17


def test_recording_never_breaks_what_it_records(world, monkeypatch):
    from analytics.models import UsageEvent
    from avatars import render_services
    from avatars.models import AvatarRender

    def broken(*args, **kwargs):
        raise RuntimeError("the database is on fire")

    monkeypatch.setattr(UsageEvent, "save", broken)
    render = AvatarRender.objects.create(avatar=world.avatar, text="Hello.", task_id="t1")
    assert render_services.render_succeeded(render.pk, "t1", video_path="x.mp4", frame_count=25, duration=1.0)
    assert AvatarRender.objects.get(pk=render.pk).status == "done"
    assert _usage(world, "admin")["totals"]["renders"] == 0


def test_an_operator_sees_all_usage(used, operator, client_for):
    response = client_for(operator).get("/api/analytics/usage", {"group_by": "avatar"})
    assert {row["avatar_name"] for row in response.json()["rows"]} == {"secret_avatar", "ben_avatar"}


def test_a_preprocessing_job_records_its_time(world, face_video):
    """The real job, in this process: done, it records one job and its seconds."""
    from avatars.models import Avatar
    from avatars.storage import storage_save
    from lipsync_worker.preprocess_job import preprocess_avatar

    avatar = Avatar.objects.create(
        tutor=world.tutor, name="fresh", status="processing", task_id="t-fresh", duration_seconds=2.0
    )
    avatar.video_path = storage_save(f"{avatar.storage_prefix}/source.mp4", face_video)
    avatar.save(update_fields=["video_path"])
    started = dt.datetime.now(dt.UTC)
    assert preprocess_avatar(avatar.pk, "t-fresh") == "ready"
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    (row,) = [r for r in _usage(world, "admin", group_by="avatar")["rows"] if r["avatar_name"] == "fresh"]
    assert row["preprocess_jobs"] == 1
    assert 0 < row["preprocess_minutes"] * 60 <= elapsed + 0.6


def test_a_students_session_is_its_token_creators(world):
    """A session opened with a session token (no account) counts as its creator's use: a
    grantee sees its students' sessions of the shared avatar, not the owner's."""
    from analytics.models import UsageEvent
    from analytics.services import usage_session_closed, usage_session_opened
    from avatars import token_services

    carol = world.users["grantee_use"]
    token, _raw = token_services.session_token_create(world.avatar, by=carol, label="class 5B")
    usage_session_opened(world.avatar.pk, session_id="s-student", opened_by=None, token_id=token.pk)
    usage_session_closed(
        world.avatar.pk, session_id="s-student", opened_by=None, token_id=token.pk, seconds=90, reason="bye"
    )
    usage_session_opened(world.avatar.pk, session_id="s-admin", opened_by=None, token_id=world.ids["token_id"])
    mine = _usage(world, "grantee_use")["totals"]
    assert (mine["sessions"], mine["session_minutes"]) == (1, 1.5)
    assert _usage(world, "admin")["totals"]["sessions"] == 2  # the owner side sees both
    opened = UsageEvent.objects.get(kind="session_opened", extra__session="s-student")
    assert opened.actor_id == carol.pk and opened.extra["viewer"] == "student"
