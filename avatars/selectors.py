"""Reads of avatars, and the one permission model every surface asks (API, admin,
WebSockets, the LiveTalking proxy, commands).

What a user may do with an avatar is its access level, from least to most:

- `view`: list, detail, preview, renders, the events socket;
- `use`: also start/stop, talk (session socket, talk page, proxy), render, voice preview;
- `manage`: also PATCH its metadata and its knowledge;
- `own`: everything (delete, reprocess, share and revoke, every conversation).

The owner side has `own`: the avatar's admin, its tutor's account, and operators. A share
gives its grantee `use` or `manage`. An avatar the user cannot see at all is a 404 whatever
the role; one it sees without the level asked for is a 403 (`Forbidden`) naming what is
missing. Grantees never reach the shares (a 404 there: they cannot re-share)."""

from django.db.models import Case, CharField, F, OuterRef, Q, QuerySet, Subquery, Value, When

from tutor_site.exceptions import Forbidden, ObjectNotFound
from tutors.models import User
from tutors.selectors import account_tutor

from .models import Avatar, AvatarShare, SessionToken

# Student session tokens start with this (recognisable in logs and headers).
SESSION_TOKEN_PREFIX = "vts_"

ACCESS_LEVELS = ("view", "use", "manage", "own")
OWN = "own"
_FORBIDDEN = {
    "use": "You can only view avatar '{name}'.",
    "manage": "Avatar '{name}' is shared with you to use, not to change: ask its owner ({owner}) for 'manage'.",
    "own": "Only the owner of avatar '{name}' ({owner}) can {action}.",
}


def _levels_from(need: str) -> list[str]:
    if need not in ACCESS_LEVELS:
        raise ValueError(f"Unknown access level {need!r}")
    return list(ACCESS_LEVELS[ACCESS_LEVELS.index(need) :])


def _owned_q(user: User) -> Q:
    """Avatars whose owner side `user` is: an admin's tutors', a tutor account's tutor's."""
    tutor = account_tutor(user)
    if tutor is not None:
        return Q(tutor_id=tutor.pk)
    return Q(tutor__owner=user)


def avatar_queryset_for(user: User, need: str = "view") -> QuerySet[Avatar]:
    """The avatars `user` may `need` (default: see): those it owns and those shared with it.
    Each row carries `access_level` (own, manage or use) and `owner_name` (its tutor's name)."""
    levels = _levels_from(need)
    qs = Avatar.objects.select_related("tutor", "tutor__owner")
    if user.is_superuser:
        return qs.annotate(access_level=Value(OWN, output_field=CharField()), owner_name=F("tutor__name"))
    owned = _owned_q(user)
    share = AvatarShare.objects.filter(avatar=OuterRef("pk"), grantee=user).values("permission")[:1]
    qs = qs.annotate(share_permission=Subquery(share)).filter(owned | Q(share_permission__isnull=False))
    qs = qs.annotate(
        access_level=Case(When(owned, then=Value(OWN)), default=F("share_permission"), output_field=CharField()),
        owner_name=F("tutor__name"),
    )
    return qs if need == "view" else qs.filter(access_level__in=levels)


def avatar_list(user: User, *, tutor_id=None, status: str | None = None, search: str | None = None) -> QuerySet[Avatar]:
    qs = avatar_queryset_for(user)
    if tutor_id not in (None, ""):
        try:
            qs = qs.filter(tutor_id=int(tutor_id))
        except (TypeError, ValueError):
            raise ObjectNotFound(f"Tutor {tutor_id} not found.") from None
    if status:
        qs = qs.filter(status=status)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(display_name__icontains=search))
    return qs.order_by("-created_at", "-id")


def avatar_access_check(avatar: Avatar, need: str, action: str = "do this") -> None:
    """Raise Forbidden when `avatar` (read through `avatar_queryset_for`) lacks `need`."""
    if getattr(avatar, "access_level", None) not in _levels_from(need):
        template = _FORBIDDEN.get(need, _FORBIDDEN["own"])
        raise Forbidden(template.format(name=avatar.name, owner=getattr(avatar, "owner_name", ""), action=action))


def avatar_get(user: User, avatar_id, need: str = "view", *, action: str = "do this") -> Avatar:
    """The avatar if `user` may `need` it: 404 when it cannot see it, 403 when it sees it
    without that level (`action` says what was refused, for `own`)."""
    try:
        avatar = avatar_queryset_for(user).get(pk=int(avatar_id))
    except (Avatar.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Avatar {avatar_id} not found.") from None
    avatar_access_check(avatar, need, action)
    return avatar


def avatar_access(user: User, avatar: Avatar) -> str | None:
    """`user`'s access level to `avatar` (own, manage, use), or None (it cannot see it)."""
    level = getattr(avatar, "access_level", None)
    if level is not None:
        return level
    return avatar_queryset_for(user).filter(pk=avatar.pk).values_list("access_level", flat=True).first()


def avatar_may(user: User, avatar: Avatar | None, need: str) -> bool:
    """Whether `user` may `need` `avatar` (for the admin's per-object permissions)."""
    if avatar is None:
        return True
    return avatar_access(user, avatar) in _levels_from(need)


def avatar_sessions_all_visible(avatar: Avatar) -> bool:
    """Whether the reader of `avatar` sees every conversation of it (the owner side), or
    only the sessions it opened itself (a grantee)."""
    return getattr(avatar, "access_level", None) == OWN


def render_get(user: User, avatar_id, render_id, need: str = "view", *, action: str = "do this"):
    from .models import AvatarRender

    avatar = avatar_get(user, avatar_id, need, action=action)
    try:
        return avatar.renders.get(pk=int(render_id))
    except (AvatarRender.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Render {render_id} of avatar {avatar_id} not found.") from None


# --- shares: the owner side only -------------------------------------------------------------


def avatar_owned_get(user: User, avatar_id) -> Avatar:
    """An avatar `user` owns (its admin, its tutor's account, an operator); a 404 for anyone
    else, grantees included (a grantee cannot tell who else it is shared with)."""
    try:
        return avatar_queryset_for(user, need=OWN).get(pk=int(avatar_id))
    except (Avatar.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Avatar {avatar_id} not found.") from None


def avatar_share_list(user: User, avatar_id) -> QuerySet[AvatarShare]:
    return (
        avatar_owned_get(user, avatar_id).shares.select_related("grantee", "created_by").order_by("-created_at", "-id")
    )


def avatar_share_get(user: User, avatar_id, share_id) -> AvatarShare:
    try:
        return avatar_share_list(user, avatar_id).get(pk=int(share_id))
    except (AvatarShare.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Share {share_id} of avatar {avatar_id} not found.") from None


def avatar_owner_side(avatar: Avatar, user: User) -> bool:
    """Whether `user` is on `avatar`'s owner side (so sharing with it makes no sense)."""
    if user.is_superuser or avatar.tutor.owner_id == user.pk:
        return True
    tutor = account_tutor(user)
    return tutor is not None and tutor.pk == avatar.tutor_id


def avatar_voice_reference(avatar) -> tuple[str, str]:
    """(storage name, spoken text) of an avatar's cloning reference; ('', '') when it has none."""
    if not getattr(avatar, "support_clone", False):
        return "", ""
    path = getattr(avatar, "voice_reference_path", "") or getattr(avatar, "audio_path", "")
    return path or "", getattr(avatar, "voice_reference_text", "") or ""


# --- usage: whose limits a use counts against ---------------------------------------------


def usage_tutor_for(user, avatar: Avatar):
    """The tutor whose per-tutor limits `user`'s use of `avatar` counts against: a tutor
    account's own tutor (its own avatar, or one shared with it); otherwise (the avatar's
    admin, an operator, a grantee admin without a tutor of its own) the avatar's tutor."""
    tutor = account_tutor(user)
    return tutor if tutor is not None else avatar.tutor


# --- student session tokens -----------------------------------------------------------------


def session_token_hash(raw: str) -> str:
    import hashlib

    return hashlib.sha256((raw or "").encode()).hexdigest()


def session_token_resolve(raw) -> SessionToken:
    """The live token of `raw` (not expired, not revoked, its creator still able to use the
    avatar: a token never does more than its creator); else `SessionTokenInvalid`."""
    from django.utils import timezone

    from tutor_site.exceptions import SessionTokenInvalid

    if not isinstance(raw, str) or not raw.startswith(SESSION_TOKEN_PREFIX) or len(raw) > 100:
        raise SessionTokenInvalid("This session link is not valid.")
    token = (
        SessionToken.objects.select_related("avatar", "avatar__tutor", "created_by", "usage_tutor")
        .filter(token_hash=session_token_hash(raw))
        .first()
    )
    if token is None:
        raise SessionTokenInvalid("This session link is not valid.")
    if token.revoked_at is not None:
        raise SessionTokenInvalid("This session link was revoked; ask your tutor for a new one.")
    if token.expires_at <= timezone.now():
        raise SessionTokenInvalid("This session link has expired; ask your tutor for a new one.")
    creator = token.created_by
    if creator is None or not (creator.is_active and creator.is_staff) or not avatar_may(creator, token.avatar, "use"):
        raise SessionTokenInvalid("This session link no longer works; ask your tutor for a new one.")
    return token


def avatar_get_for_token(raw, avatar_id) -> tuple[Avatar, SessionToken]:
    """(avatar, token) when `raw` is a live token of avatar `avatar_id`: `SessionTokenInvalid`
    (401, WS 4401) for a bad, expired or revoked token, `ObjectNotFound` (404, WS 4404)
    for another avatar's."""
    token = session_token_resolve(raw)
    if str(token.avatar_id) != str(avatar_id):
        raise ObjectNotFound(f"Avatar {avatar_id} not found.")
    return token.avatar, token


def session_token_list(user: User, avatar_id) -> QuerySet:
    """The avatar's tokens `user` sees: all of them for the owner side, its own for a
    grantee (`use` needed)."""
    avatar = avatar_get(user, avatar_id, "use")
    qs = avatar.session_tokens.select_related("created_by").order_by("-created_at", "-id")
    return qs if avatar.access_level == OWN else qs.filter(created_by=user)


def session_token_get(user: User, avatar_id, token_id) -> SessionToken:
    try:
        return session_token_list(user, avatar_id).get(pk=int(token_id))
    except (SessionToken.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Session token {token_id} of avatar {avatar_id} not found.") from None


def avatar_get_live(user, avatar_id) -> Avatar:
    """The avatar of a live session (talk, signaling, proxy): an account's by its access
    (`use`), a session token holder's own avatar only (another one: 404)."""
    token = getattr(user, "session_token", None)
    if token is not None:
        if str(token.avatar_id) != str(avatar_id):
            raise ObjectNotFound(f"Avatar {avatar_id} not found.")
        return avatar_queryset_for_token(token).get()
    return avatar_get(user, avatar_id, "use")


def avatar_queryset_for_token(token: SessionToken) -> QuerySet[Avatar]:
    return Avatar.objects.select_related("tutor", "tutor__owner").filter(pk=token.avatar_id)


def usage_tutor_of(user, avatar: Avatar):
    """`usage_tutor_for`, for an account or a session token holder (its creator's side)."""
    token = getattr(user, "session_token", None)
    if token is not None:
        return token.usage_tutor or avatar.tutor
    return usage_tutor_for(user, avatar)
