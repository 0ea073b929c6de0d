"""The shapes of the usage report (for the API schema; the selectors build the dicts)."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


class UsageTotalsSerializer(serializers.Serializer):
    sessions = serializers.IntegerField()
    session_minutes = serializers.FloatField()
    utterances = serializers.IntegerField()
    spoken_minutes = serializers.FloatField()
    answers = serializers.IntegerField()
    answer_latency_p50_ms = serializers.IntegerField(
        allow_null=True, help_text="first lip-synced frame, from a histogram (±17%)"
    )
    answer_latency_p95_ms = serializers.IntegerField(allow_null=True)
    renders = serializers.IntegerField()
    rendered_minutes = serializers.FloatField()
    preprocess_jobs = serializers.IntegerField()
    preprocess_minutes = serializers.FloatField()
    errors = serializers.IntegerField()


class UsageRowSerializer(UsageTotalsSerializer):
    day = serializers.DateField(required=False, help_text="group_by=day")
    avatar_id = serializers.IntegerField(required=False, help_text="group_by=avatar")
    avatar_name = serializers.CharField(required=False)
    tutor_id = serializers.IntegerField(required=False, help_text="group_by=tutor")
    tutor_name = serializers.CharField(required=False)


# `from` is a Python keyword, so the report's shape is declared from a dict.
UsageReportSerializer = inline_serializer(
    name="UsageReport",
    fields={
        "from": serializers.DateField(),
        "to": serializers.DateField(),
        "group_by": serializers.ChoiceField(choices=["day", "avatar", "tutor"]),
        "rows": UsageRowSerializer(many=True),
        "totals": inline_serializer(
            name="UsageReportTotals",
            fields={
                **UsageTotalsSerializer().get_fields(),
                "errors_by_kind": serializers.DictField(child=serializers.IntegerField()),
            },
        ),
    },
)
