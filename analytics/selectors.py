"""Reads of usage: the totals per day, avatar or tutor that `GET /api/analytics/usage`, its
CSV and the admin's charts show, and who sees what (the only place that decides it).

Scope, as everywhere (avatars.selectors): an operator sees all usage; an admin the usage of
its tutors' avatars (by anyone: its grantees' use of a shared avatar too); a tutor account
its own tutor's; and an account that was shared an avatar only what it did with it itself
(its sessions, its students' sessions through its session tokens, its renders).

Speed: totals are read from `UsageRollup` (updated with every event) rather than from the
events: per tutor unless the query names or groups by avatars; per day for `group_by=day`,
and otherwise per month for the whole months of the range plus per day for its partial
months at either end. A year of 500 avatars (50 tutors) is then ~18,000 tutor-day rows by
day, ~6,000 avatar-month rows by avatar, instead of ~180,000 avatar-day rows. The answer
latency percentiles come from the summed latency histograms of those rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.fields.json import KeyTextTransform

from avatars.models import Avatar, AvatarShare
from avatars.selectors import avatar_get
from tutor_site.exceptions import InvalidInput
from tutors.models import Tutor
from tutors.selectors import account_tutor, is_tutor_account, tutor_get

from .models import (
    ALL_AVATARS,
    LATENCY_BUCKETS,
    LATENCY_EDGES_MS,
    TOTAL_FIELDS,
    Grain,
    UsageEvent,
    UsageKind,
    UsageRollup,
)

GROUP_BY = ("day", "avatar", "tutor")
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366  # a bound on the work one request may ask for

# The columns of a usage row, in order (the CSV's header).
USAGE_COLUMNS = [
    "sessions",
    "session_minutes",
    "utterances",
    "spoken_minutes",
    "answers",
    "answer_latency_p50_ms",
    "answer_latency_p95_ms",
    "renders",
    "rendered_minutes",
    "preprocess_jobs",
    "preprocess_minutes",
    "errors",
]


@dataclass(frozen=True)
class UsageQuery:
    date_from: dt.date
    date_to: dt.date
    group_by: str = "day"
    tutor_id: int | None = None
    avatar_id: int | None = None


def _date(params, name: str, default: dt.date) -> dt.date:
    raw = (params.get(name) or "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date as YYYY-MM-DD (got '{raw[:40]}').", field=name) from None


def _id(params, name: str) -> int | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a whole number (got '{raw[:40]}').", field=name)
    return int(raw)


def usage_query_parse(params) -> UsageQuery:
    """The query of `from`, `to` (inclusive days, UTC; default the last 30 days), `group_by`
    (day, avatar, tutor; default day), `tutor_id`, `avatar_id`; `InvalidInput` (400) naming
    the parameter that is wrong."""
    today = dt.datetime.now(dt.UTC).date()
    date_to = _date(params, "to", today)
    date_from = _date(params, "from", date_to - dt.timedelta(days=DEFAULT_DAYS - 1))
    if date_from > date_to:
        raise InvalidInput(f"from ({date_from}) must not be after to ({date_to}).", field="from")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise InvalidInput(f"The range from {date_from} to {date_to} is longer than {MAX_DAYS} days.", field="from")
    group_by = (params.get("group_by") or "day").strip()
    if group_by not in GROUP_BY:
        raise InvalidInput(f"group_by must be one of {', '.join(GROUP_BY)} (got '{group_by[:40]}').", field="group_by")
    return UsageQuery(date_from, date_to, group_by, _id(params, "tutor_id"), _id(params, "avatar_id"))


def _scope(user) -> tuple[Q, Q | None]:
    """(the rows of the avatars `user` is the owner side of, the rows of its own use of the
    avatars shared with it, or None when none is), as in the module's docstring."""
    if user.is_superuser:
        return Q(), None
    tutor = account_tutor(user)
    if tutor is not None:
        owned = Q(tutor_id=tutor.pk)
    elif is_tutor_account(user):  # a login left without its tutor owns nothing
        owned = Q(pk__in=[])
    else:
        owned = Q(owner_id=user.pk)
    shared = list(AvatarShare.objects.filter(grantee=user).values_list("avatar_id", flat=True))
    return owned, (Q(avatar_id__in=shared, actor_id=user.pk) if shared else None)


def _row_sets(user, query: UsageQuery) -> list:
    """The rollup rows to add up: per avatar when the query names or groups by avatars;
    otherwise the per-tutor totals of the owner side (a tenth as many rows), plus the
    per-avatar rows of the user's own use of avatars shared with it."""
    owned, shared = _scope(user)
    per_avatar = UsageRollup.objects.exclude(avatar_id=ALL_AVATARS)
    if query.avatar_id is not None or query.group_by == "avatar":
        sets = [per_avatar.filter(owned | shared if shared is not None else owned)]
    else:
        sets = [UsageRollup.objects.filter(owned, avatar_id=ALL_AVATARS)]
        if shared is not None:
            sets.append(per_avatar.filter(shared))
    if query.tutor_id is not None:
        sets = [rows.filter(tutor_id=query.tutor_id) for rows in sets]
    if query.avatar_id is not None:
        sets = [rows.filter(avatar_id=query.avatar_id) for rows in sets]
    return sets


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _spans(date_from: dt.date, date_to: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """(grain, first start, last start) covering [date_from, date_to]: the whole months in
    it by month, the days of the partial months at either end by day."""
    first_month = date_from if date_from.day == 1 else _next_month(date_from)
    end_month = _month_start(date_to + dt.timedelta(days=1))  # months starting before it end in range
    if first_month >= end_month:
        return [(Grain.DAY, date_from, date_to)]
    spans = [(Grain.MONTH, first_month, _month_start(end_month - dt.timedelta(days=1)))]
    if date_from < first_month:
        spans.append((Grain.DAY, date_from, first_month - dt.timedelta(days=1)))
    if end_month <= date_to:
        spans.append((Grain.DAY, end_month, date_to))
    return spans


_SUMS = {name: Sum(name) for name in TOTAL_FIELDS + LATENCY_BUCKETS}
_GROUP_FIELD = {"day": "start", "avatar": "avatar_id", "tutor": "tutor_id"}


def _percentile(histogram: list[int], fraction: float) -> int | None:
    """The latency (ms) under which `fraction` of the answers fall, interpolated within
    its histogram bucket."""
    total = sum(histogram)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            low = LATENCY_EDGES_MS[index]
            high = LATENCY_EDGES_MS[index + 1] if index + 1 < len(LATENCY_EDGES_MS) else low * 1.35
            return round(low + (high - low) * max(0.0, rank - seen) / count)
        seen += count
    return round(LATENCY_EDGES_MS[-1])


def _row(sums: dict) -> dict:
    histogram = [int(sums.get(name) or 0) for name in LATENCY_BUCKETS]
    return {
        "sessions": int(sums.get("sessions") or 0),
        "session_minutes": round((sums.get("session_seconds") or 0) / 60, 2),
        "utterances": int(sums.get("utterances") or 0),
        "spoken_minutes": round((sums.get("spoken_seconds") or 0) / 60, 2),
        "answers": int(sums.get("answers") or 0),
        "answer_latency_p50_ms": _percentile(histogram, 0.50),
        "answer_latency_p95_ms": _percentile(histogram, 0.95),
        "renders": int(sums.get("renders") or 0),
        "rendered_minutes": round((sums.get("rendered_seconds") or 0) / 60, 2),
        "preprocess_jobs": int(sums.get("preprocess_jobs") or 0),
        "preprocess_minutes": round((sums.get("preprocess_seconds") or 0) / 60, 2),
        "errors": int(sums.get("errors") or 0),
    }


def _add(into: dict, sums: dict) -> None:
    for name in TOTAL_FIELDS + LATENCY_BUCKETS:
        into[name] = (into.get(name) or 0) + (sums.get(name) or 0)


def usage_report(user, query: UsageQuery) -> dict:
    """{from, to, group_by, rows, totals} of `user`'s usage in `query`: rows per day (every
    day of the range, oldest first), or per avatar / tutor (most sessions first)."""
    if query.tutor_id is not None:
        tutor_get(user, query.tutor_id)  # a tutor it cannot see: 404
    if query.avatar_id is not None:
        avatar_get(user, query.avatar_id)  # an avatar it cannot see: 404
    group_field = _GROUP_FIELD[query.group_by]
    spans = (
        [(Grain.DAY, query.date_from, query.date_to)]
        if query.group_by == "day"
        else _spans(query.date_from, query.date_to)
    )
    groups: dict = {}
    totals: dict = {}
    for rows in _row_sets(user, query):
        for grain, first, last in spans:
            span_rows = rows.filter(grain=grain, start__gte=first, start__lte=last)
            for sums in span_rows.values(group_field).annotate(**_SUMS).order_by():
                _add(groups.setdefault(sums[group_field], {}), sums)
                _add(totals, sums)
    if query.group_by == "day":
        days = (query.date_to - query.date_from).days + 1
        out = []
        for offset in range(days):
            day = query.date_from + dt.timedelta(days=offset)
            out.append({"day": day.isoformat(), **_row(groups.get(day, {}))})
    else:
        out = _named_rows(query.group_by, groups)
    return {
        "from": query.date_from.isoformat(),
        "to": query.date_to.isoformat(),
        "group_by": query.group_by,
        "rows": out,
        "totals": {**_row(totals), "errors_by_kind": _errors_by_kind(user, query)},
    }


# Errors are read from the events themselves (they are few; the totals only count them).
ERROR_KINDS_MAX = 20


def _errors_by_kind(user, query: UsageQuery) -> dict:
    """{kind: count} of the errors in `query` (most frequent first)."""
    owned, shared = _scope(user)
    start = dt.datetime.combine(query.date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(query.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    errors = UsageEvent.objects.filter(owned | shared if shared is not None else owned)
    errors = errors.filter(kind=UsageKind.ERROR, at__gte=start, at__lt=end)
    if query.tutor_id is not None:
        errors = errors.filter(tutor_id=query.tutor_id)
    if query.avatar_id is not None:
        errors = errors.filter(avatar_id=query.avatar_id)
    counts = (
        errors.annotate(error_kind=KeyTextTransform("kind", "extra"))
        .values("error_kind")
        .annotate(count=Count("id"))
        .order_by("-count", "error_kind")[:ERROR_KINDS_MAX]
    )
    return {row["error_kind"] or "unknown": row["count"] for row in counts}


def _named_rows(group_by: str, groups: dict) -> list[dict]:
    model = Avatar if group_by == "avatar" else Tutor
    names = dict(model.objects.filter(pk__in=list(groups)).values_list("pk", "name"))
    out = [
        {
            f"{group_by}_id": key,
            f"{group_by}_name": names.get(key, f"{group_by} {key} (deleted)"),
            **_row(sums),
        }
        for key, sums in groups.items()
    ]
    out.sort(key=lambda row: (-row["sessions"], -row["rendered_minutes"], row[f"{group_by}_name"]))
    return out


def usage_csv_header(group_by: str) -> list[str]:
    keys = ["day"] if group_by == "day" else [f"{group_by}_id", f"{group_by}_name"]
    return keys + USAGE_COLUMNS
