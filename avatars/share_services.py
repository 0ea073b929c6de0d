"""Sharing an avatar with another account, and revoking it. Who may share (the owner side)
is `avatars.selectors.avatar_owned_get`; what a grantee may then do, `avatar_get(..., need)`."""

from __future__ import annotations

from django.db import transaction

from tutor_site.account_events import avatar_access_revoked_send
from tutor_site.exceptions import InvalidInput
from tutors.models import User
from tutors.selectors import user_by_email

from .models import Avatar, AvatarShare
from .selectors import avatar_owner_side

# Says whether an email has an account: the callers are staff (admins and tutors) only.
NO_ACCOUNT = "No account with that email."


def avatar_share_create(avatar: Avatar, *, by: User, email: str, permission: str) -> tuple[AvatarShare, bool]:
    """Share `avatar` with the account of `email` (any admin or tutor account); sharing again
    with the same account changes the permission. Returns (share, created)."""
    grantee = user_by_email(email)
    if grantee is None:
        raise InvalidInput(NO_ACCOUNT, field="email")
    if avatar_owner_side(avatar, grantee):
        raise InvalidInput(f"{grantee.email} already has every right on avatar '{avatar.name}'.", field="email")
    with transaction.atomic():
        share, created = AvatarShare.objects.select_for_update().get_or_create(
            avatar=avatar, grantee=grantee, defaults={"permission": permission, "created_by": by}
        )
        if not created and share.permission != permission:
            share.permission = permission
            share.save(update_fields=["permission"])
    return share, created


def avatar_share_delete(share: AvatarShare) -> None:
    """Revoke: the grantee gets a 404 from now on, and its open sockets of the avatar close."""
    grantee_id, avatar_id = share.grantee_id, share.avatar_id
    with transaction.atomic():
        AvatarShare.objects.filter(pk=share.pk).delete()
        transaction.on_commit(lambda: _access_ended(grantee_id, avatar_id))


def _access_ended(grantee_id: int, avatar_id: int) -> None:
    """Its sockets of the avatar close (their group); its proxy sessions end on the worker."""
    from .live_services import live_sessions_end_for

    avatar_access_revoked_send(grantee_id, avatar_id)
    live_sessions_end_for(grantee_id, avatar_id)
