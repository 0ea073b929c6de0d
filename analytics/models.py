"""Usage as it happens (`UsageEvent`, one row per thing that happened) and its totals per
day and per month, per avatar and per tutor (`UsageRollup`, updated in the same transaction
as each event), which the usage query reads so that a year of 500 avatars is a few
thousand rows to add up rather than millions of events.

Ids are plain integers, not foreign keys: usage outlives the avatars and renders it was
about, and recording never waits on (or cascades through) the rows it names."""

from django.db import models


class UsageKind(models.TextChoices):
    SESSION_OPENED = "session_opened", "Live session opened"
    SESSION_CLOSED = "session_closed", "Live session closed"  # value: its duration (s)
    UTTERANCE = "utterance", "Utterance spoken"  # value: seconds spoken
    ANSWER = "answer", "Question answered"  # value: first_frame_ms (null: never shown)
    RENDER = "render", "Clip rendered"  # value: seconds of video
    PREPROCESS = "preprocess", "Video preprocessed"  # value: seconds of processing
    ERROR = "error", "Error"  # extra["kind"]: what failed


class UsageEvent(models.Model):
    kind = models.CharField(max_length=20, choices=UsageKind.choices)
    at = models.DateTimeField(db_index=True)
    avatar_id = models.IntegerField()
    tutor_id = models.IntegerField()  # the avatar's tutor
    owner_id = models.IntegerField()  # the avatar's admin
    # The account it was done by or for (a session token's creator for a student); null when
    # no account is behind it (preprocessing).
    actor_id = models.IntegerField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The errors by kind of a report (analytics.selectors), and a look at one avatar.
            models.Index(fields=["owner_id", "kind", "at"], name="usage_event_owner_kind_at"),
            models.Index(fields=["tutor_id", "kind", "at"], name="usage_event_tutor_kind_at"),
            models.Index(fields=["avatar_id", "kind", "at"], name="usage_event_avatar_kind_at"),
        ]

    def __str__(self):
        return f"{self.kind} of avatar {self.avatar_id} at {self.at:%Y-%m-%d %H:%M:%S}"


# Answer latency histogram (ms): bucket i holds latencies in [EDGES[i], EDGES[i+1]); the
# last one everything from 25 s up. Log-spaced (x1.35): a percentile read from it is within
# ~17% of the exact one, and it adds up across days and avatars with plain SQL SUMs.
LATENCY_EDGES_MS = [0.0] + [round(25 * 1.35**i) for i in range(23)]
LATENCY_BUCKETS = [f"latency_b{i:02d}" for i in range(len(LATENCY_EDGES_MS))]

TOTAL_FIELDS = [
    "sessions",
    "session_seconds",
    "utterances",
    "spoken_seconds",
    "answers",
    "renders",
    "rendered_seconds",
    "preprocess_jobs",
    "preprocess_seconds",
    "errors",
]


class Grain(models.TextChoices):
    DAY = "day", "Day"
    MONTH = "month", "Month"


# `UsageRollup.avatar_id` of the rows that total all the avatars of a tutor.
ALL_AVATARS = 0


class UsageRollup(models.Model):
    """The totals of one avatar's usage (or, with avatar_id ALL_AVATARS, of all its tutor's
    avatars) by one actor (0: none) in one day or month (UTC)."""

    grain = models.CharField(max_length=5, choices=Grain.choices)
    start = models.DateField()  # the day, or the month's first day
    avatar_id = models.IntegerField()
    actor_id = models.IntegerField(default=0)
    tutor_id = models.IntegerField()
    owner_id = models.IntegerField()
    sessions = models.IntegerField(default=0)
    session_seconds = models.FloatField(default=0)
    utterances = models.IntegerField(default=0)
    spoken_seconds = models.FloatField(default=0)
    answers = models.IntegerField(default=0)
    renders = models.IntegerField(default=0)
    rendered_seconds = models.FloatField(default=0)
    preprocess_jobs = models.IntegerField(default=0)
    preprocess_seconds = models.FloatField(default=0)
    errors = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "start", "tutor_id", "avatar_id", "actor_id"], name="usage_rollup_unique"
            )
        ]
        indexes = [
            # An admin's, a tutor account's: per tutor (avatar_id ALL_AVATARS) or per avatar.
            models.Index(fields=["owner_id", "grain", "avatar_id", "start"], name="usage_rollup_owner"),
            models.Index(fields=["owner_id", "grain", "start"], name="usage_rollup_owner_days"),
            models.Index(fields=["tutor_id", "grain", "avatar_id", "start"], name="usage_rollup_tutor"),
            models.Index(fields=["avatar_id", "grain", "start"], name="usage_rollup_avatar"),
        ]

    def __str__(self):
        return f"Usage of avatar {self.avatar_id} ({self.grain} of {self.start})"


for _bucket in LATENCY_BUCKETS:  # answers per latency bucket, named latency_b00..
    UsageRollup.add_to_class(_bucket, models.IntegerField(default=0))


class RenderRequester(models.Model):
    """Who asked for a clip, until it is done or failed (the render's usage is theirs: a
    grantee sees its own)."""

    render_id = models.IntegerField(unique=True)
    actor_id = models.IntegerField()

    def __str__(self):
        return f"Render {self.render_id} asked for by account {self.actor_id}"
