from django.urls import path

from . import live_views
from .broadcast_views import watch_page

# Under /api/avatars/ (included from avatars/urls.py).
urlpatterns = [
    path("<int:avatar_id>/start", live_views.AvatarStartView.as_view(), name="avatar-start"),
    path("<int:avatar_id>/stop", live_views.AvatarStopView.as_view(), name="avatar-stop"),
    path("<int:avatar_id>/ice-servers", live_views.AvatarIceServersView.as_view(), name="avatar-ice-servers"),
    path("webrtc/<path:path>", live_views.WebRTCProxyView.as_view(), name="avatar-webrtc"),
]

# At the site root (included from tutor_site/urls.py).
talk_urlpatterns = [
    path("avatars/<int:avatar_id>/talk/", live_views.talk_page, name="avatar-talk"),
    # A student's talk page: the session token alone opens it (no sign-in).
    path("talk/<str:token>/", live_views.talk_token_page, name="avatar-talk-token"),
    # A classroom broadcast's watch page: its viewer token (`?token=`) is all it needs.
    path("watch/<str:broadcast_id>/", watch_page, name="broadcast-watch"),
]
