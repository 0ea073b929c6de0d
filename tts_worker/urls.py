"""Included by the project: `avatar_urlpatterns` under /api/avatars/, `api_urlpatterns` under /api/."""
from django.urls import path

from .api import TTSModelListView, TTSPreviewView

avatar_urlpatterns = [
    path("tts-models", TTSModelListView.as_view(), name="tts-model-list"),
]

api_urlpatterns = [
    path("tts/preview", TTSPreviewView.as_view(), name="tts-preview"),
]
