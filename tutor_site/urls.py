from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics.admin import analytics_admin_view
from avatar_templates.urls import batch_urlpatterns
from avatars.live_admin import live_workers_admin_view
from avatars.live_urls import talk_urlpatterns
from avatars.urls import speech_urlpatterns
from tutors.account_views import urlpatterns as account_urlpatterns

from .auth_api import LoginView, LogoutView, RefreshView
from .health import HealthView

api_patterns = [
    path("auth/login", LoginView.as_view(), name="auth-login"),
    path("auth/refresh", RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", LogoutView.as_view(), name="auth-logout"),
    path("health", HealthView.as_view(), name="health"),
    path("tutors/", include("tutors.urls")),
    path("avatars/", include(batch_urlpatterns)),  # batches from a template (avatar_templates)
    path("avatars/", include("avatars.urls")),
    path("avatar-templates/", include("avatar_templates.urls")),
    path("avatars/", include("conversations.urls")),  # knowledge and conversations of an avatar
    path("", include(speech_urlpatterns)),
    path("analytics/", include("analytics.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("admin/analytics/", analytics_admin_view, name="analytics-admin"),  # before the app index it replaces
    path("admin/live-workers/", live_workers_admin_view, name="live-workers-admin"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("", include(talk_urlpatterns)),
    path("", include(account_urlpatterns)),
]
