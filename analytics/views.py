"""GET /api/analytics/usage and /api/analytics/usage.csv: thin views over the selectors."""

import csv
import io

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import usage_csv_header, usage_query_parse, usage_report
from .serializers import UsageReportSerializer

USAGE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first day (UTC), default 29 days before `to`"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day (UTC, included), default today"),
    OpenApiParameter("group_by", str, enum=["day", "avatar", "tutor"], description="default day"),
    OpenApiParameter("tutor_id", int),
    OpenApiParameter("avatar_id", int),
]


class UsageView(APIView):
    @extend_schema(operation_id="analytics_usage", parameters=USAGE_PARAMETERS, responses=UsageReportSerializer)
    def get(self, request):
        return Response(usage_report(request.user, usage_query_parse(request.query_params)))


class UsageCsvView(APIView):
    @extend_schema(
        operation_id="analytics_usage_csv",
        parameters=USAGE_PARAMETERS,
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        query = usage_query_parse(request.query_params)
        report = usage_report(request.user, query)
        header = usage_csv_header(query.group_by)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(report["rows"])
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        filename = f"usage-{query.group_by}-{query.date_from}-{query.date_to}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
