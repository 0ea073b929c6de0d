"""/api/avatars/tts-models and /api/tts/preview: thin views over the speech services.

The model list is what the tts workers published; a preview is a job on the `tts` queue
(202 at once; `?wait=1` waits and answers the WAV, as clients of the first version expect).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import speech_services
from .engine_selectors import tts_engine_list


def _wav_response(wav: bytes) -> HttpResponse:
    response = HttpResponse(wav, content_type="audio/wav")
    response["Content-Disposition"] = 'inline; filename="preview.wav"'
    response["Cache-Control"] = "no-store"
    return response


def _wants_wait(request) -> bool:
    return request.query_params.get("wait", "").lower() in ("1", "true", "yes")


class TTSModelListView(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(tts_engine_list())


class TTSPreviewView(APIView):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(allow_blank=True, trim_whitespace=False)
        tts_model = serializers.CharField(required=False, allow_blank=True)
        voice = serializers.CharField(required=False, allow_blank=True)
        timbre = serializers.CharField(required=False, allow_blank=True)
        avatar_id = serializers.IntegerField(required=False, allow_null=True)

    @extend_schema(
        request=InputSerializer,
        parameters=[OpenApiParameter("wait", bool, description="Wait for the WAV instead of a 202 job.")],
        responses={202: OpenApiTypes.OBJECT, (200, "audio/wav"): OpenApiTypes.BINARY},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = speech_services.speech_preview_request(
            request.user,
            text=data["text"],
            tts_model=data.get("tts_model") or "",
            voice=data.get("voice") or data.get("timbre") or "",
            avatar_id=data.get("avatar_id"),
        )
        if _wants_wait(request):
            return _wav_response(speech_services.speech_preview_wait(request.user, job.job_id))
        return Response(
            {"job_id": job.job_id, "status": "queued", "result_url": reverse("tts-preview-result", args=[job.job_id])},
            status=202,
        )


class TTSPreviewResultView(APIView):
    @extend_schema(responses={(200, "audio/wav"): OpenApiTypes.BINARY, 202: OpenApiTypes.OBJECT})
    def get(self, request, job_id: str):
        wav = speech_services.speech_preview_result(request.user, job_id)
        if wav is None:
            return Response({"job_id": job_id, "status": "running"}, status=202)
        return _wav_response(wav)
