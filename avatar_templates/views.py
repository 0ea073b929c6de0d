"""/api/avatar-templates/ and /api/avatars/batch: thin DRF views over the services and selectors."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from avatars.serializers import StatusMessageSerializer, input_validate

from . import services
from .selectors import avatar_batch_get, template_get, template_queryset_for
from .serializers import (
    AvatarBatchCreateSerializer,
    AvatarBatchSerializer,
    AvatarTemplateSerializer,
    TemplateInputSerializer,
)

TEMPLATE_INPUT = {
    "application/json": TemplateInputSerializer,
    "multipart/form-data": TemplateInputSerializer,
}


class AvatarTemplateListView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses=AvatarTemplateSerializer(many=True))
    def get(self, request):
        return Response(AvatarTemplateSerializer(template_queryset_for(request.user), many=True).data)

    @extend_schema(request=TEMPLATE_INPUT, responses={201: AvatarTemplateSerializer})
    def post(self, request):
        data = input_validate(TemplateInputSerializer, request.data)
        template = services.template_create(user=request.user, **data)
        return Response(AvatarTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class AvatarTemplateDetailView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses=AvatarTemplateSerializer)
    def get(self, request, template_id: int):
        return Response(AvatarTemplateSerializer(template_get(request.user, template_id)).data)

    @extend_schema(request=TEMPLATE_INPUT, responses=AvatarTemplateSerializer)
    def patch(self, request, template_id: int):
        template = template_get(request.user, template_id, change="change it")
        data = input_validate(TemplateInputSerializer, request.data, partial=True)
        template = services.template_update(template, **data)
        return Response(AvatarTemplateSerializer(template_get(request.user, template.pk)).data)

    @extend_schema(responses=StatusMessageSerializer)
    def delete(self, request, template_id: int):
        template = template_get(request.user, template_id, change="delete it")
        name = template.name
        services.template_delete(template)
        return Response({"status": "success", "message": f"Template '{name}' deleted successfully"})


class AvatarBatchCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": AvatarBatchCreateSerializer}, responses={202: AvatarBatchSerializer})
    def post(self, request):
        data = input_validate(AvatarBatchCreateSerializer, request.data)
        batch = services.avatar_batch_create(user=request.user, **data)
        return Response(AvatarBatchSerializer(avatar_batch_get(request.user, batch.pk)).data, status=202)


class AvatarBatchDetailView(APIView):
    @extend_schema(responses=AvatarBatchSerializer)
    def get(self, request, batch_id: int):
        return Response(AvatarBatchSerializer(avatar_batch_get(request.user, batch_id)).data)
