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


_TYPES = {
    cls.__name__: cls
    for cls in (
        ServiceError,
        InvalidInput,
        InvalidMedia,
        NameTaken,
        ObjectNotFound,
        NotReady,
        EngineUnavailable,
        TooManyRequests,
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
