"""/api/tutors/: thin DRF views over the tutor services and selectors."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import limits, services
from .selectors import tutor_get, tutor_manage_check, tutor_queryset_for


class TutorSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owner = serializers.EmailField(source="owner.email", read_only=True)
    account = serializers.EmailField(
        source="account.email", read_only=True, default=None, help_text="The tutor's login."
    )
    avatar_count = serializers.IntegerField(read_only=True, default=0)
    max_avatars = serializers.IntegerField(read_only=True, allow_null=True)
    max_live_sessions = serializers.IntegerField(read_only=True, allow_null=True)
    monthly_live_minutes = serializers.IntegerField(read_only=True, allow_null=True)
    monthly_render_minutes = serializers.IntegerField(read_only=True, allow_null=True)
    max_storage_mb = serializers.IntegerField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


def _limit(help_text: str):
    return serializers.IntegerField(min_value=0, required=False, allow_null=True, help_text=help_text)


class TutorUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    # The limits (the tutor's admin only; null: the TUTOR_* setting, 0: no limit).
    max_avatars = _limit("Avatars of the tutor (TUTOR_MAX_AVATARS).")
    max_live_sessions = _limit("Concurrent live sessions (TUTOR_MAX_LIVE_SESSIONS).")
    monthly_live_minutes = _limit("Live minutes per calendar month, UTC (TUTOR_MONTHLY_LIVE_MINUTES).")
    monthly_render_minutes = _limit("Talking-clip minutes per calendar month, UTC (TUTOR_MONTHLY_RENDER_MINUTES).")
    max_storage_mb = _limit("Megabytes of uploads and clips stored (TUTOR_MAX_STORAGE_MB).")


class TutorListCreateView(APIView):
    @extend_schema(responses=TutorSerializer(many=True))
    def get(self, request):
        return Response(TutorSerializer(tutor_queryset_for(request.user), many=True).data)

    @extend_schema(request=TutorSerializer, responses={201: TutorSerializer})
    def post(self, request):
        tutor_manage_check(request.user, "create tutors")
        serializer = TutorSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tutor = services.tutor_create(owner=request.user, **serializer.validated_data)
        return Response(TutorSerializer(tutor_get(request.user, tutor.pk)).data, status=status.HTTP_201_CREATED)


class TutorDetailView(APIView):
    @extend_schema(responses=TutorSerializer)
    def get(self, request, tutor_id: int):
        return Response(TutorSerializer(tutor_get(request.user, tutor_id)).data)

    @extend_schema(request=TutorUpdateSerializer, responses=TutorSerializer)
    def patch(self, request, tutor_id: int):
        tutor = tutor_get(request.user, tutor_id, manage="change its tutor")
        services.tutor_update(tutor, **dict(request.data.items()))
        return Response(TutorSerializer(tutor_get(request.user, tutor_id)).data)

    @extend_schema(responses={200: None})
    def delete(self, request, tutor_id: int):
        tutor = tutor_get(request.user, tutor_id, manage="delete tutors")
        name = tutor.name
        services.tutor_delete(tutor)
        return Response({"status": "success", "message": f"Tutor '{name}' deleted successfully"})


class TutorUsageView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, tutor_id: int):
        """Each limit of the tutor: `limit` (null: none), `used`, `left`, `unit`, whether it
        comes from the setting, and `resets_at` for the monthly ones (1st of next month, UTC)."""
        return Response(limits.tutor_usage(tutor_get(request.user, tutor_id)))
