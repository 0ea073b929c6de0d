"""REST endpoints of the TTS worker: the model list and voice previews. Thin: services do the work."""
from __future__ import annotations

import base64

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.http import HttpResponse
from kombu.exceptions import OperationalError
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from tutor_site.exceptions import EngineUnavailable, InvalidInput, ServiceError

from . import services
from .selectors import tts_model_list


class TTSModelListView(APIView):
    def get(self, request):
        return Response(tts_model_list())


class TTSPreviewView(APIView):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(allow_blank=True, trim_whitespace=False)
        tts_model = serializers.CharField(required=False, allow_blank=True)
        voice = serializers.CharField(required=False, allow_blank=True)
        timbre = serializers.CharField(required=False, allow_blank=True)
        avatar_id = serializers.IntegerField(required=False, allow_null=True)

    def post(self, request):
        from avatars.selectors import avatar_get

        from .tasks import tts_preview

        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tts_model = data.get("tts_model") or ""
        voice = data.get("voice") or data.get("timbre") or ""
        reference_path = reference_text = ""
        if data.get("avatar_id") is not None:
            avatar = avatar_get(request.user, data["avatar_id"])
            tts_model = tts_model or avatar.tts_model
            voice = voice or (avatar.timbre if tts_model == avatar.tts_model else "")
            reference_path, reference_text = services.avatar_voice_reference(avatar)
        engine, voice, text = services.tts_request_validate(
            data["text"], tts_model, voice, max_chars=services.preview_max_chars()
        )
        if not engine.supports_clone:
            reference_path = reference_text = ""
        services.tts_engine_require_available(engine)

        timeout = float(getattr(settings, "TTS_PREVIEW_TIMEOUT", 30))
        try:
            result = tts_preview.apply_async(
                args=[text, engine.name, voice, reference_path, reference_text], expires=timeout
            )
            answer = result.get(timeout=timeout)
        except CeleryTimeoutError:
            raise EngineUnavailable(
                f"No TTS worker answered within {timeout:g} s: is a worker serving the 'tts' queue running?"
            ) from None
        except OperationalError as exc:
            raise EngineUnavailable(f"The task queue cannot be reached: {exc}") from None
        if "error" in answer:
            error = dict(answer["error"])
            status, detail, field = error.pop("status", 400), error.pop("detail", ""), error.pop("field", None)
            kind = {"InvalidInput": InvalidInput, "EngineUnavailable": EngineUnavailable}.get(error.pop("type", ""), ServiceError)
            exc = kind(detail, field=field, extra=error)
            exc.status_code = status
            raise exc
        response = HttpResponse(base64.b64decode(answer["wav_b64"]), content_type="audio/wav")
        response["Content-Disposition"] = 'inline; filename="preview.wav"'
        response["Cache-Control"] = "no-store"
        return response
