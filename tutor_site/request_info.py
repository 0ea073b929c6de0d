"""Facts about a request that several places need, decided once."""

from django.conf import settings


def client_address(request) -> str:
    """The client's address: the socket peer, or the first X-Forwarded-For hop when the
    deployment says a trusted proxy sets it (TRUST_X_FORWARDED_FOR)."""
    meta = getattr(request, "META", request)
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return meta.get("REMOTE_ADDR", "") or ""
