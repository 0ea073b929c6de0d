"""Student session tokens: made by whoever may use an avatar (its owner side or a `use` /
`manage` grantee), revoked by their creator or the owner side. What a token opens is
decided in `avatars.selectors.session_token_resolve` / `avatar_get_for_token`."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.utils import timezone

from contracts import usage
from tutor_site.account_events import session_token_revoked_send
from tutors.models import User

from .models import Avatar, SessionToken
from .selectors import SESSION_TOKEN_PREFIX, session_token_hash, usage_tutor_for

TOKEN_MIN_TTL = 60
TOKEN_MAX_TTL = 7 * 24 * 3600


def session_token_create(
    avatar: Avatar, *, by: User, ttl_seconds: int = 3600, max_minutes: int | None = None, label: str = ""
) -> tuple[SessionToken, str]:
    """A new token of `avatar` (input validated by `SessionTokenCreateSerializer`); returns
    it with its secret, which is shown this once and stored only as a hash."""
    raw = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = SessionToken.objects.create(
        avatar=avatar,
        created_by=by,
        usage_tutor=usage_tutor_for(by, avatar),
        token_hash=session_token_hash(raw),
        prefix=raw[:12],
        label=label,
        max_minutes=max_minutes,
        expires_at=timezone.now() + dt.timedelta(seconds=int(ttl_seconds)),
    )
    return token, raw


def session_token_revoke(token: SessionToken) -> SessionToken:
    """Revoke: the token opens nothing from now on; its sockets close at once and the
    workers end its sessions (also those opened through the proxy) at their next count."""
    with transaction.atomic():
        SessionToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        token.refresh_from_db()
        token_id = token.pk
        left = max(60, int((token.expires_at - timezone.now()).total_seconds()) + 60)

        def tell():
            usage.token_revoked_mark(token_id, left)
            session_token_revoked_send(token_id)

        transaction.on_commit(tell)
    return token
