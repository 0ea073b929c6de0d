"""Telling an account's open WebSockets that it lost access, at once rather than at the
next periodic check (`channels_auth.AuthWatchMixin`): a channel-layer group per account,
and one per (account, avatar) for a share that was revoked."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def account_group_name(user_id: int) -> str:
    return f"account-{user_id}"


def avatar_access_group_name(user_id: int, avatar_id: int) -> str:
    return f"access-{user_id}-{avatar_id}"


def _group_send(group: str, message: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception:  # the socket still closes at its next periodic check
        logger.warning("Could not notify %s", group, exc_info=True)


def account_disabled_send(user_id: int) -> None:
    """Close every socket of a deactivated account (handler `account_disabled`)."""
    _group_send(account_group_name(user_id), {"type": "account.disabled"})


def avatar_access_revoked_send(user_id: int, avatar_id: int) -> None:
    """Close the sockets `user_id` has open on `avatar_id` (handler `avatar_access_revoked`)."""
    _group_send(avatar_access_group_name(user_id, avatar_id), {"type": "avatar.access_revoked"})


def session_token_group_name(token_id: int) -> str:
    return f"session-token-{token_id}"


def session_token_revoked_send(token_id: int) -> None:
    """Close the sockets opened with a student session token (handler `session_token_revoked`)."""
    _group_send(session_token_group_name(token_id), {"type": "session_token.revoked"})
