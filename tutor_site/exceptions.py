"""Failures a user can act on, and the one place that maps them to HTTP answers.

Services raise these; views, admin actions, consumers and commands catch them (the API
through `api_exception_handler`) so that every surface reports the same message.
"""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST

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
    status_code = status.HTTP_409_CONFLICT


class ObjectNotFound(ServiceError):
    """Missing, or owned by another admin: both look the same from outside."""

    status_code = status.HTTP_404_NOT_FOUND


class NotReady(ServiceError):
    """The object exists but is in a state that does not allow the request yet."""

    status_code = status.HTTP_409_CONFLICT


class EngineUnavailable(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


def _flatten_validation(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            text = _flatten_validation(value)
            parts.append(text if key in ("non_field_errors", "detail") else f"{key}: {text}")
        return "; ".join(parts)
    if isinstance(detail, (list, tuple)):
        return " ".join(_flatten_validation(item) for item in detail)
    return str(detail)


def api_exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        # One readable sentence in `detail`, the per-field errors beside it.
        errors = response.data
        response.data = {"detail": _flatten_validation(errors)}
        if isinstance(errors, dict):
            response.data["errors"] = errors
    elif isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": _flatten_validation(response.data)}
    return response
