"""Tutor logins: an admin gives a tutor an account (with a password, or a one-time invite
link where the tutor sets one) and removes it. Who may do so is decided by
`tutors.selectors.tutor_get(..., manage=...)`; what the account then sees, by the selectors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tutor_site.account_events import account_disabled_send
from tutor_site.exceptions import InvalidInput, NameTaken, ObjectNotFound

from .auth_services import password_fingerprint
from .models import TUTOR_ACCOUNTS_GROUP, Tutor, User

# Avatars (and their knowledge and conversations) of its own tutor; its tutor read-only.
_TUTOR_ACCOUNT_PERMISSIONS = Q(
    content_type__app_label="avatars", content_type__model__in=["avatar", "avatarshare"]
) | Q(content_type__app_label="conversations")
# Templates: read (its admin's and the global ones); batches: made for its own tutor.
_TUTOR_ACCOUNT_PERMISSIONS |= Q(content_type__app_label="avatar_templates", codename="view_avatartemplate") | Q(
    content_type__app_label="avatar_templates", content_type__model="avatarbatch"
)
_INVITE_SALT = "tutors.invite"
INVITE_INVALID = "This invite link is invalid, expired or already used: ask your admin for a new one."


@dataclass(frozen=True)
class TutorAccountGiven:
    user: User
    invite_token: str = ""  # set when no password was given
    invite_expires_at: datetime | None = None


def tutor_accounts_group_ensure() -> Group:
    """The group that gives tutor accounts the model permissions for their own avatars (the
    selectors then limit them to their tutor's avatars and those shared with them)."""
    group, _ = Group.objects.get_or_create(name=TUTOR_ACCOUNTS_GROUP)
    wanted = list(Permission.objects.filter(_TUTOR_ACCOUNT_PERMISSIONS))
    wanted += list(Permission.objects.filter(content_type__app_label="tutors", codename="view_tutor"))
    group.permissions.add(*wanted)
    return group


def _email_clean(email: str) -> str:
    email = (email or "").strip().lower()
    if not email or "@" not in email:
        raise InvalidInput("Give a valid email address.", field="email")
    return email


def _password_check(password: str, email: str) -> None:
    try:
        validate_password(password, User(email=email))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="password") from None


def tutor_account_create(tutor: Tutor, *, email: str, password: str | None = None) -> TutorAccountGiven:
    """Give `tutor` a login: a new staff account in the tutor accounts group, linked to it.
    Without a password the account has none until the tutor follows the invite link."""
    email = _email_clean(email)
    if password:
        _password_check(password, email)
    with transaction.atomic():
        locked = Tutor.objects.select_for_update().get(pk=tutor.pk)
        if locked.account_id is not None:
            raise NameTaken(
                f"Tutor '{locked.name}' already has a login ({locked.account.email}); remove it first.",
                field="email",
            )
        if User.objects.filter(email=email).exists():
            raise InvalidInput(f"An account with the email {email} already exists.", field="email")
        user = User.objects.create_user(email, password or None, is_staff=True, full_name=locked.name[:150])
        user.groups.add(tutor_accounts_group_ensure())
        locked.account = user
        locked.save(update_fields=["account", "updated_at"])
    tutor.account = user
    if password:
        return TutorAccountGiven(user=user)
    return TutorAccountGiven(
        user=user,
        invite_token=invite_token_make(user),
        invite_expires_at=timezone.now() + timedelta(hours=settings.TUTOR_INVITE_MAX_HOURS),
    )


def tutor_account_remove(tutor: Tutor) -> User:
    """Remove the tutor's login: the account is deactivated (its tokens and admin session
    stop working), loses its staff role and group, is unlinked, and its open WebSockets close."""
    with transaction.atomic():
        locked = Tutor.objects.select_for_update().get(pk=tutor.pk)
        if locked.account_id is None:
            raise ObjectNotFound(f"Tutor '{locked.name}' has no login.")
        user = User.objects.select_for_update().get(pk=locked.account_id)
        locked.account = None
        locked.save(update_fields=["account", "updated_at"])
        user.is_active = False
        user.is_staff = False
        user.set_unusable_password()  # also ends its refresh tokens (`pwd` fingerprint)
        user.save(update_fields=["is_active", "is_staff", "password"])
        user.groups.clear()
        user_id = user.pk
        transaction.on_commit(lambda: _account_ended(user_id))
    tutor.account = None
    return user


def _account_ended(user_id: int) -> None:
    """Its sockets close (their group); the sessions it opened through the proxy end too."""
    from avatars.live_services import live_sessions_end_for

    account_disabled_send(user_id)
    live_sessions_end_for(user_id)


# --- the invite link -------------------------------------------------------------------------


def invite_token_make(user: User) -> str:
    """Signed and expiring; single use because it carries the password's fingerprint,
    which setting the password changes."""
    return signing.dumps({"u": user.pk, "p": password_fingerprint(user)}, salt=_INVITE_SALT, compress=True)


def invite_account(token: str) -> User:
    """The account an invite token is for, while it is valid; else InvalidInput."""
    try:
        data = signing.loads(token, salt=_INVITE_SALT, max_age=settings.TUTOR_INVITE_MAX_HOURS * 3600)
    except signing.BadSignature:  # includes SignatureExpired
        raise InvalidInput(INVITE_INVALID) from None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or password_fingerprint(user) != data.get("p"):
        raise InvalidInput(INVITE_INVALID)
    return user


def invite_accept(token: str, password: str) -> User:
    """Set the account's password from its invite link (which then stops working)."""
    with transaction.atomic():
        user = invite_account(token)
        user = User.objects.select_for_update().get(pk=user.pk)
        if password_fingerprint(user) != signing.loads(token, salt=_INVITE_SALT)["p"]:
            raise InvalidInput(INVITE_INVALID)  # used by a parallel request
        _password_check(password, user.email)
        user.set_password(password)
        user.save(update_fields=["password"])
    return user
