from django.urls import include, path

from . import share_views, speech_views, token_views, views

urlpatterns = [
    path("list", views.AvatarListView.as_view(), name="avatar-list"),
    path("create", views.AvatarCreateView.as_view(), name="avatar-create"),
    path("avatar-models", views.AvatarModelListView.as_view(), name="avatar-models"),
    path("tts-models", speech_views.TTSModelListView.as_view(), name="tts-model-list"),
    path("asr-models", views.ASRModelListView.as_view(), name="asr-model-list"),
    path("llm-models", views.LLMModelListView.as_view(), name="llm-model-list"),
    path("<int:avatar_id>", views.AvatarDetailView.as_view(), name="avatar-detail"),
    path("<int:avatar_id>/preview", views.AvatarPreviewView.as_view(), name="avatar-preview"),
    path("<int:avatar_id>/reprocess", views.AvatarReprocessView.as_view(), name="avatar-reprocess"),
    path("<int:avatar_id>/render", views.AvatarRenderCreateView.as_view(), name="avatar-render-create"),
    path("<int:avatar_id>/renders", views.AvatarRenderListView.as_view(), name="avatar-render-list"),
    path(
        "<int:avatar_id>/renders/<int:render_id>", views.AvatarRenderDetailView.as_view(), name="avatar-render-detail"
    ),
    path("<int:avatar_id>/shares", share_views.AvatarShareListView.as_view(), name="avatar-share-list"),
    path(
        "<int:avatar_id>/shares/<int:share_id>", share_views.AvatarShareDetailView.as_view(), name="avatar-share-detail"
    ),
    path(
        "<int:avatar_id>/session-tokens", token_views.SessionTokenListView.as_view(), name="avatar-session-token-list"
    ),
    path(
        "<int:avatar_id>/session-tokens/<int:token_id>",
        token_views.SessionTokenDetailView.as_view(),
        name="avatar-session-token-detail",
    ),
    path("", include("avatars.live_urls")),
]

# Mounted under /api/ by the project.
speech_urlpatterns = [
    path("tts/preview", speech_views.TTSPreviewView.as_view(), name="tts-preview"),
    path("tts/preview/<uuid:job_id>", speech_views.TTSPreviewResultView.as_view(), name="tts-preview-result"),
]
