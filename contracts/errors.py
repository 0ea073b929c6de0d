"""Failures a user can act on, shared by the web process and the workers.

Plain Python (no Django, no DRF) so that a worker can raise them and the web can map
them to HTTP answers in one place (`tutor_site.exceptions.api_exception_handler`).
A failure crossing a process boundary travels as `error_payload()` and comes back as the
same type through `error_from_payload()`.
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, *, field: str | None = None, extra: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}

    def as_dict(self) -> dict:
        body = {"detail": self.detail}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class InvalidInput(ServiceError):
    """A field the caller sent is wrong (bad value, unknown or read-only field)."""


class InvalidMedia(ServiceError):
    """An uploaded video or audio file is not one we accept."""


class NameTaken(ServiceError):
    status_code = 409


class ObjectNotFound(ServiceError):
    """Missing, or owned by another admin: both look the same from outside."""

    status_code = 404


class SessionTokenInvalid(ServiceError):
    """A student session token that is unknown, expired or revoked (or whose creator lost
    access): 401, and 4401 on a WebSocket."""

    status_code = 401


class Forbidden(ServiceError):
    """The caller can see the object but its role does not allow this action (a shared
    avatar's grantee deleting it, a tutor account changing its tutor)."""

    status_code = 403


class NotReady(ServiceError):
    """The object exists but is in a state that does not allow the request yet."""

    status_code = 409


class TooManyRequests(ServiceError):
    """A limit or a lockout: try again after `retry_after` seconds (sent as Retry-After)."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after: int, field: str | None = None, extra: dict | None = None):
        super().__init__(detail, field=field, extra={**(extra or {}), "retry_after": int(retry_after)})
        self.retry_after = int(retry_after)


class EngineUnavailable(ServiceError):
    status_code = 503


class ServiceUnavailable(ServiceError):
    """A part of the system (the database, Redis) cannot be reached for a moment: nothing
    was done, and the same request can be sent again shortly (sent with Retry-After)."""

    status_code = 503
    retry_after = 5


class InsufficientStorage(ServiceError):
    """The server's disk is full: nothing was stored."""

    status_code = 507


# What the user is told: answering a request (nothing was done), or as the reason a job ended.
_OUTAGES = {
    "disk": (
        InsufficientStorage,
        "The server's storage is full; nothing was stored. Try again later, or ask the operator to free space.",
        "The server's storage is full, so the result could not be saved; try again once space has been freed.",
    ),
    "queue": (
        ServiceUnavailable,
        "The job queue (Redis) cannot be reached for a moment; nothing was started. Try again in a few seconds.",
        "The connection to the job queue (Redis) was lost while this ran; start it again.",
    ),
    "database": (
        ServiceUnavailable,
        "The database cannot be reached for a moment; nothing was saved. Try again in a few seconds.",
        "The database could not be reached while this ran; start it again.",
    ),
}


def outage_kind(exc: BaseException) -> str | None:
    """ "disk", "queue" (Redis), "database" when `exc` (or one of its causes) is such an
    outage, else None."""
    import errno

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "disk"
        module, name = type(exc).__module__ or "", type(exc).__name__
        if module.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError"):
            return "queue"
        if module.startswith("kombu") and name == "OperationalError":
            return "queue"
        if module.startswith("django.db") and name in ("OperationalError", "InterfaceError"):
            return "database"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def outage_error(exc: BaseException) -> ServiceError | None:
    """The error to answer for a failure of the infrastructure rather than of the request
    (the database or Redis unreachable, the disk full), or None; looks through the causes."""
    kind = outage_kind(exc)
    if kind is None:
        return None
    error_type, detail, _job = _OUTAGES[kind]
    return error_type(detail)


def outage_reason(exc: BaseException) -> str | None:
    """The same, said as the reason a worker's job ended (recorded on the avatar or render)."""
    kind = outage_kind(exc)
    return _OUTAGES[kind][2] if kind else None


_TYPES = {
    cls.__name__: cls
    for cls in (
        ServiceError,
        InvalidInput,
        InvalidMedia,
        NameTaken,
        ObjectNotFound,
        Forbidden,
        NotReady,
        EngineUnavailable,
        TooManyRequests,
        ServiceUnavailable,
        InsufficientStorage,
    )
}


def error_payload(exc: ServiceError) -> dict:
    """A failure as plain data for a task result: type, status and the caller-facing fields."""
    return {"type": type(exc).__name__, "status": exc.status_code, **exc.as_dict()}


def error_from_payload(payload: dict) -> ServiceError:
    """The exception a worker reported with `error_payload`, rebuilt in the caller's process."""
    data = dict(payload)
    kind = _TYPES.get(data.pop("type", ""), ServiceError)
    status = data.pop("status", kind.status_code)
    detail, field = data.pop("detail", ""), data.pop("field", None)
    if kind is TooManyRequests:
        exc = kind(detail, retry_after=data.pop("retry_after", 60), field=field, extra=data)
    else:
        exc = kind(detail, field=field, extra=data)
    exc.status_code = status
    return exc
