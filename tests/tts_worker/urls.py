"""The TTS worker's routes where the project mounts them (/api/avatars/..., /api/...)."""
from django.urls import include, path

from tts_worker.urls import api_urlpatterns, avatar_urlpatterns

urlpatterns = [
    path("api/avatars/", include(avatar_urlpatterns)),
    path("api/", include(api_urlpatterns)),
]
