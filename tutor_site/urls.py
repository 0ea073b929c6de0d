from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tts_worker.urls import api_urlpatterns as tts_api_patterns
from tts_worker.urls import avatar_urlpatterns as tts_avatar_patterns

from avatars.live_urls import talk_urlpatterns

from .auth_api import LoginView, LogoutView, RefreshView
from .health import HealthView

api_patterns = [
    path("auth/login", LoginView.as_view(), name="auth-login"),
    path("auth/refresh", RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", LogoutView.as_view(), name="auth-logout"),
    path("health", HealthView.as_view(), name="health"),
    path("tutors/", include("tutors.urls")),
    path("avatars/", include(tts_avatar_patterns)),
    path("avatars/", include("avatars.urls")),
    path("", include(tts_api_patterns)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("", include(talk_urlpatterns)),
]
