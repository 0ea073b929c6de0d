"""Sign-in rules shared by the API login, the token refresh and the admin login.

- Failed sign-ins are counted per email and per client address in the cache (Redis);
  past LOGIN_MAX_FAILURES for an email (or LOGIN_MAX_FAILURES_PER_IP for an address)
  within LOGIN_LOCKOUT_SECONDS, sign-in is refused with a 429 until the lock ends,
  before any password is hashed (PBKDF2 is the expensive part).
- Refresh tokens carry the time of the sign-in they come from (`auth_time`) and a
  fingerprint of the password (`pwd`): a refresh past JWT_SESSION_MAX_DAYS after sign-in,
  or after the password changed, is refused. Each refresh token is used once: blacklisting
  it is one insert under a unique constraint, so two parallel refreshes of the same token
  give one new pair and one 401.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from contracts.errors import TooManyRequests

from .models import User


class SignInRefused(Exception):
    """Wrong credentials, or a token that is no longer valid: a 401 with this message."""


def _failures_key(kind: str, value: str) -> str:
    return f"signin-failures:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def _limits() -> dict[str, int]:
    return {"email": settings.LOGIN_MAX_FAILURES, "ip": settings.LOGIN_MAX_FAILURES_PER_IP}


def signin_check_allowed(*, email: str, ip: str) -> None:
    """Raise TooManyRequests while this email or address is locked out."""
    for kind, value in (("email", email), ("ip", ip)):
        if not value:
            continue
        key = _failures_key(kind, value)
        failures = cache.get(key) or 0
        if failures >= _limits()[kind]:
            retry = cache.ttl(key) if hasattr(cache, "ttl") else settings.LOGIN_LOCKOUT_SECONDS
            raise TooManyRequests(
                "Too many failed sign-ins: try again in a few minutes.",
                retry_after=max(1, int(retry or settings.LOGIN_LOCKOUT_SECONDS)),
            )


def signin_failed(*, email: str, ip: str) -> None:
    for kind, value in (("email", email), ("ip", ip)):
        if value:
            key = _failures_key(kind, value)
            # add() starts the window; incr() counts within it (the window does not slide).
            cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)


def signin_succeeded(*, email: str) -> None:
    cache.delete(_failures_key("email", email))


def password_fingerprint(user: User) -> str:
    """Changes whenever the password does (the stored hash is salted); reveals nothing."""
    return hashlib.sha256(f"{settings.SECRET_KEY}:{user.password}".encode()).hexdigest()[:16]


def token_pair_for(user: User, *, auth_time: int | None = None) -> RefreshToken:
    refresh = RefreshToken.for_user(user)
    refresh["auth_time"] = int(auth_time or time.time())
    refresh["pwd"] = password_fingerprint(user)
    return refresh


def refresh_rotate(raw_token: str) -> RefreshToken:
    """A new pair for a valid refresh token, which is spent (blacklisted) at once."""
    try:
        old = RefreshToken(raw_token)
    except TokenError:
        raise SignInRefused("The refresh token is invalid, expired or already used.") from None
    auth_time = int(old.get("auth_time") or old.get("iat") or 0)
    if time.time() - auth_time > settings.JWT_SESSION_MAX_DAYS * 86400:
        raise SignInRefused("This sign-in is too old: sign in again.")
    user_id = old.get(settings.SIMPLE_JWT.get("USER_ID_CLAIM", "user_id"))
    user = User.objects.filter(pk=user_id, is_active=True, is_staff=True).first()
    if user is None:
        raise SignInRefused("The account of this token is disabled.")
    if old.get("pwd") != password_fingerprint(user):
        raise SignInRefused("The password was changed since this sign-in: sign in again.")
    try:
        with transaction.atomic():
            outstanding, _ = OutstandingToken.objects.get_or_create(
                jti=old[settings.SIMPLE_JWT.get("JTI_CLAIM", "jti")],
                defaults={"user": user, "token": str(old), "expires_at": datetime_from_epoch(old["exp"])},
            )
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError:
        raise SignInRefused("The refresh token is invalid, expired or already used.") from None
    return token_pair_for(user, auth_time=auth_time)
