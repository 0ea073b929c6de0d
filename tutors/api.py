"""/api/tutors/: thin DRF views over the tutor services and selectors."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
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
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class TutorUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


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
