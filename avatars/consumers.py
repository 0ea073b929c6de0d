"""WebSocket consumers of the avatars app."""
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tutor_site.exceptions import ObjectNotFound

from .events import avatar_group_name, avatar_state
from .selectors import avatar_get

# Close codes: 4401 not authenticated, 4404 no such avatar for this user.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _avatar_for(user, avatar_id):
    try:
        return avatar_get(user, avatar_id)
    except ObjectNotFound:
        return None


class AvatarEventsConsumer(AsyncJsonWebsocketConsumer):
    """WS /ws/avatars/{id}/events/: the avatar's state now, then every change."""

    async def connect(self):
        user = self.scope.get("user")
        subprotocols = self.scope.get("subprotocols") or []
        accept_protocol = next((p for p in subprotocols if p.startswith("bearer.")), None)
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        avatar = await _avatar_for(user, self.scope["url_route"]["kwargs"]["avatar_id"])
        if avatar is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = avatar_group_name(avatar.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept(subprotocol=accept_protocol)
        await self.send_json({"event": "avatar.state", "avatar": avatar_state(avatar)})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.send_json({"event": "error", "detail": "This channel only sends events."})

    async def avatar_event(self, message):
        await self.send_json({"event": message["event"], "avatar": message["avatar"]})
