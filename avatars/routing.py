from django.urls import path

from .consumers import AvatarEventsConsumer

websocket_urlpatterns = [
    path("ws/avatars/<int:avatar_id>/events/", AvatarEventsConsumer.as_asgi()),
]
