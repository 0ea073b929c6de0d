from django.urls import path

from .broadcast_consumers import BroadcastViewerConsumer
from .consumers import AvatarEventsConsumer, SignalingConsumer

websocket_urlpatterns = [
    path("ws/avatars/<int:avatar_id>/events/", AvatarEventsConsumer.as_asgi()),
    path("ws/avatars/<int:avatar_id>/session/", SignalingConsumer.as_asgi()),
    path("ws/broadcasts/<str:broadcast_id>/", BroadcastViewerConsumer.as_asgi()),
]
