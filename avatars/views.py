"""/api/avatars/...: thin DRF views; the services and selectors do the work."""

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from tutor_site.exceptions import InvalidInput, ObjectNotFound

from . import render_services, services
from .engine_selectors import asr_engine_list, lipsync_engine_list, llm_engine_list
from .models import RenderStatus
from .selectors import avatar_get, avatar_list, render_get
from .serializers import (
    AvatarCreateSerializer,
    AvatarListSerializer,
    AvatarSerializer,
    AvatarUpdateSerializer,
    RenderCreateSerializer,
    RenderSerializer,
    StatusMessageSerializer,
    input_validate,
)


def query_int(request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number.", field=name) from None
    if value < 0 or value > maximum:
        raise InvalidInput(f"{name} must be between 0 and {maximum}.", field=name)
    return value


class AvatarListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("tutor_id", int),
            OpenApiParameter("status", str),
            OpenApiParameter("search", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=AvatarListSerializer,
    )
    def get(self, request):
        qs = avatar_list(
            request.user,
            tutor_id=request.query_params.get("tutor_id"),
            status=request.query_params.get("status"),
            search=request.query_params.get("search"),
        )
        limit = query_int(request, "limit", 100, 1000)
        offset = query_int(request, "offset", 0, 10**9)
        total = qs.count()
        avatars = AvatarSerializer(qs[offset : offset + limit], many=True).data
        return Response({"avatars": avatars, "total": total})


class AvatarCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": AvatarCreateSerializer}, responses={201: AvatarSerializer})
    def post(self, request):
        data = input_validate(AvatarCreateSerializer, request.data)
        avatar = services.avatar_create(user=request.user, **data)
        return Response(AvatarSerializer(avatar).data, status=status.HTTP_201_CREATED)


class AvatarDetailView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(responses=AvatarSerializer)
    def get(self, request, avatar_id: int):
        return Response(AvatarSerializer(avatar_get(request.user, avatar_id)).data)

    @extend_schema(request=AvatarUpdateSerializer, responses=AvatarSerializer)
    def patch(self, request, avatar_id: int):
        avatar = avatar_get(request.user, avatar_id, "manage")
        avatar = services.avatar_update(avatar, **input_validate(AvatarUpdateSerializer, request.data, partial=True))
        return Response(AvatarSerializer(avatar).data)

    @extend_schema(responses=StatusMessageSerializer)
    def delete(self, request, avatar_id: int):
        avatar = avatar_get(request.user, avatar_id, "own", action="delete it")
        name = avatar.name
        services.avatar_delete(avatar)
        return Response({"status": "success", "message": f"Avatar '{name}' deleted successfully"})


class AvatarPreviewView(APIView):
    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request, avatar_id: int):
        avatar = avatar_get(request.user, avatar_id)
        if not avatar.preview_image_path or not default_storage.exists(avatar.preview_image_path):
            raise ObjectNotFound(f"Avatar '{avatar.name}' has no preview yet (status: {avatar.status}).")
        response = FileResponse(default_storage.open(avatar.preview_image_path, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=60"
        return response


class AvatarReprocessView(APIView):
    @extend_schema(request=None, responses={202: AvatarSerializer})
    def post(self, request, avatar_id: int):
        avatar = services.avatar_reprocess(avatar_get(request.user, avatar_id, "own", action="reprocess it"))
        return Response(AvatarSerializer(avatar).data, status=status.HTTP_202_ACCEPTED)


class AvatarModelListView(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response({"models": lipsync_engine_list()})


class ASRModelListView(APIView):
    """Speech recognition engines: available on a live worker, or why not."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(asr_engine_list())


class LLMModelListView(APIView):
    """Responders (the knowledge base, LLM servers): available on a live worker, or why not."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(llm_engine_list())


class AvatarRenderCreateView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        request={"application/json": RenderCreateSerializer, "multipart/form-data": RenderCreateSerializer},
        responses={202: RenderSerializer},
    )
    def post(self, request, avatar_id: int):
        avatar = avatar_get(request.user, avatar_id, "use")
        data = input_validate(RenderCreateSerializer, request.data)
        render = render_services.render_create(avatar, by=request.user, **data)
        return Response(RenderSerializer(render).data, status=status.HTTP_202_ACCEPTED)


class AvatarRenderListView(APIView):
    @extend_schema(responses=RenderSerializer(many=True))
    def get(self, request, avatar_id: int):
        avatar = avatar_get(request.user, avatar_id)
        return Response(RenderSerializer(avatar.renders.all(), many=True).data)


class AvatarRenderDetailView(APIView):
    @extend_schema(responses={(200, "video/mp4"): OpenApiTypes.BINARY, 202: RenderSerializer})
    def get(self, request, avatar_id: int, render_id: int):
        """The MP4 once it is done; until then (or on failure) the job's state as JSON."""
        render = render_get(request.user, avatar_id, render_id)
        if render.status == RenderStatus.DONE and render.video_path and default_storage.exists(render.video_path):
            response = FileResponse(
                default_storage.open(render.video_path, "rb"),
                content_type="video/mp4",
                filename=f"{render.avatar.name}-{render.pk}.mp4",
            )
            return response
        body = RenderSerializer(render).data
        if render.status == RenderStatus.ERROR:
            return Response({"detail": f"The render failed: {render.error_message}", "render": body}, status=409)
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=StatusMessageSerializer)
    def delete(self, request, avatar_id: int, render_id: int):
        render = render_get(request.user, avatar_id, render_id, "own", action="delete its talking clips")
        render_services.render_delete(render)
        return Response({"status": "success", "message": f"Render {render_id} deleted successfully"})
