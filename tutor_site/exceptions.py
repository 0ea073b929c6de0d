"""Failures a user can act on, and the one place that maps them to HTTP answers.

Services raise these; views, admin actions, consumers and commands catch them (the API
through `api_exception_handler`) so that every surface reports the same message.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from contracts.errors import (  # the types live in the shared layer; re-exported for the web apps
    EngineUnavailable,
    Forbidden,
    InsufficientStorage,
    InvalidInput,
    InvalidMedia,
    NameTaken,
    NotReady,
    ObjectNotFound,
    ServiceError,
    ServiceUnavailable,
    SessionTokenInvalid,
    TooManyRequests,
    outage_error,
)

logger = logging.getLogger(__name__)

__all__ = [
    "EngineUnavailable",
    "Forbidden",
    "InsufficientStorage",
    "InvalidInput",
    "InvalidMedia",
    "NameTaken",
    "NotReady",
    "ObjectNotFound",
    "ServiceError",
    "ServiceUnavailable",
    "SessionTokenInvalid",
    "TooManyRequests",
    "api_exception_handler",
]


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
    if not isinstance(exc, (ServiceError, drf_exceptions.APIException)):
        # The database or Redis down, the disk full: a clear 503 / 507, not an HTML 500.
        outage = outage_error(exc)
        if outage is not None:
            logger.warning("Answered %s: %s", outage.status_code, outage.detail, exc_info=exc)
            exc = outage
    if isinstance(exc, ServiceError):
        response = Response(exc.as_dict(), status=exc.status_code)
        if isinstance(exc, (TooManyRequests, ServiceUnavailable)):
            response["Retry-After"] = str(exc.retry_after)
        return response
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
