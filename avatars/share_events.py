"""Closing a grantee's sockets of an avatar the moment its share is revoked: consumers
join a channel-layer group per (account, avatar) (`tutor_site.account_events`)."""

import contextlib

from tutor_site.account_events import avatar_access_group_name

CLOSE_ACCESS_REVOKED = 4404  # as for an avatar the user cannot see
ACCESS_REVOKED = "Your access to this avatar was removed."


class AvatarAccessWatchMixin:
    """For the avatar consumers: join before the permission check (a revoke meanwhile then
    closes the socket rather than being missed); leave in `disconnect`."""

    async def access_watch_start(self, user_id: int, avatar_id: int) -> None:
        self._access_group = avatar_access_group_name(user_id, avatar_id)
        await self.channel_layer.group_add(self._access_group, self.channel_name)

    async def access_watch_stop(self) -> None:
        group, self._access_group = getattr(self, "_access_group", None), None
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def avatar_access_revoked(self, message) -> None:
        # One message both protocols read: signaling's `type`, the events socket's `event`.
        with contextlib.suppress(Exception):  # not accepted yet, or the client is gone
            await self.send_json({"type": "error", "event": "error", "detail": ACCESS_REVOKED})
        await self.close(code=CLOSE_ACCESS_REVOKED)
