from django.urls import reverse
from rest_framework import serializers

from .models import AvatarModel, TTSModel


class ProgressSerializer(serializers.Serializer):
    stage = serializers.CharField(source="progress_stage")
    percent = serializers.IntegerField(source="progress_percent")
    message = serializers.CharField(source="progress_message")


class AvatarSerializer(serializers.Serializer):
    """The contract's avatar fields plus processing progress."""

    id = serializers.IntegerField()
    tutor_id = serializers.IntegerField()
    name = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    avatar_model = serializers.CharField()
    tts_model = serializers.CharField()
    timbre = serializers.CharField()
    avatar_blur = serializers.BooleanField()
    support_clone = serializers.BooleanField()
    status = serializers.CharField()
    preview_image_path = serializers.CharField()
    preview_url = serializers.SerializerMethodField()
    video_path = serializers.CharField()
    audio_path = serializers.CharField()
    engine_url = serializers.CharField()
    progress = ProgressSerializer(source="*")
    error_message = serializers.CharField()
    task_id = serializers.CharField()
    frame_count = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    duration_seconds = serializers.FloatField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_preview_url(self, avatar) -> str | None:
        if not avatar.preview_image_path:
            return None
        return reverse("avatar-preview", args=[avatar.pk])


class AvatarListSerializer(serializers.Serializer):
    avatars = AvatarSerializer(many=True)
    total = serializers.IntegerField()


class AvatarCreateSerializer(serializers.Serializer):
    """Documents the multipart form; validation happens in `avatar_create`."""

    tutor_id = serializers.IntegerField()
    name = serializers.CharField()
    display_name = serializers.CharField(required=False)
    description = serializers.CharField(required=False)
    avatar_model = serializers.ChoiceField(AvatarModel.choices, required=False)
    tts_model = serializers.ChoiceField(TTSModel.choices, required=False)
    timbre = serializers.CharField(required=False)
    avatar_blur = serializers.BooleanField(required=False)
    support_clone = serializers.BooleanField(required=False)
    prompt_face = serializers.FileField()
    prompt_voice = serializers.FileField(required=False)


class AvatarUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(required=False)
    description = serializers.CharField(required=False)
    timbre = serializers.CharField(required=False)
    avatar_blur = serializers.BooleanField(required=False)
    status = serializers.ChoiceField(["active", "inactive"], required=False)


class StatusMessageSerializer(serializers.Serializer):
    status = serializers.CharField()
    message = serializers.CharField()


class RenderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    avatar_id = serializers.IntegerField()
    status = serializers.CharField()
    text = serializers.CharField()
    tts_model = serializers.CharField()
    voice = serializers.CharField()
    progress_percent = serializers.IntegerField()
    progress_message = serializers.CharField()
    error_message = serializers.CharField()
    frame_count = serializers.IntegerField()
    duration_seconds = serializers.FloatField()
    download_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_download_url(self, render) -> str:
        return reverse("avatar-render-detail", args=[render.avatar_id, render.pk])


class RenderCreateSerializer(serializers.Serializer):
    text = serializers.CharField(required=False)
    tts_model = serializers.CharField(required=False)
    voice = serializers.CharField(required=False)
    audio = serializers.FileField(required=False)
