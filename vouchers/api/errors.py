"""One place that turns every error into application/problem+json (RFC 9457).

Every answer's code, status and title come from `config.errors`.

Domain errors keep their stable `code`; the request's transaction is rolled back
unless the error says the service kept its work on purpose. Anything unexpected is
a 500 with nothing internal in it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from django.http import Http404, JsonResponse
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import set_rollback

from config.errors import DomainError, error_type

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise

logger = logging.getLogger("vouchers.api")
PROBLEM = "application/problem+json"


class RateLimited(DomainError):
    """429 `rate_limited`: too many requests."""


class RateLimiterUnavailable(DomainError):
    """The shared rate-limit store is unreachable: refuse rather than run unlimited."""


class IdempotencyKeyRequired(DomainError):
    """400 `idempotency_key_required`: idempotency-Key header required."""


class IdempotencyKeyReused(DomainError):
    """422 `idempotency_key_reused`: idempotency-Key reused with a different request."""


class IdempotencyInProgress(DomainError):
    """409 `idempotency_in_progress`: A request with this Idempotency-Key is still running."""


class PayloadTooLarge(DomainError):
    """A request body over API_MAX_BODY_BYTES: refused before it is parsed."""

    @classmethod
    def for_size(cls, *, size: int | None, limit: int) -> PayloadTooLarge:
        if size is None:
            detail = _("The request body is too large; at most %(limit)s are accepted.") % {"limit": limit}
        else:
            detail = _("The request body is %(size)s bytes; at most %(limit)s are accepted.") % {
                "size": size, "limit": limit}
        return cls(str(detail), max_bytes=limit)


def problem_body(
    *, status: int, code: str, title: str | StrPromise, detail: str | StrPromise, extra: dict | None = None
) -> dict:
    # str(): titles and details may be lazy translations; the body is rendered (and stored
    # for idempotent replays) in the request's language.
    body = {"type": f"https://errors.vouchers.example/{code}", "title": str(title), "status": status,
            "code": code, "detail": str(detail)}
    body.update(extra or {})
    return body


def _json_safe(value):
    """Extras rendered exactly as the API renders the same values elsewhere."""
    if isinstance(value, datetime):
        return serializers.DateTimeField().to_representation(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def problem_response(exc: DomainError) -> Response:
    extra = {key: _json_safe(value) for key, value in exc.extra.items()}
    retry_after = extra.pop("retry_after", None)
    response = Response(
        problem_body(status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, extra=extra),
        status=exc.status, content_type=PROBLEM,
    )
    if retry_after is not None:
        response["Retry-After"] = str(max(int(retry_after), 1))
    return response


def _answer(name: str, detail, *, status: int | None = None, **extra) -> Response:
    """The problem response of the error `name` of config.errors (its code, status, title)."""
    error = error_type(name)
    status = error.status if error.status is not None else status
    if status is None:
        raise ValueError(f"{name} has no fixed status: pass the one it was raised with")
    body = problem_body(status=status, code=error.code, title=error.title, detail=detail, extra=extra)
    return Response(body, status=status, content_type=PROBLEM)


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        if exc.rollback:
            set_rollback()
        return problem_response(exc)
    set_rollback()
    if isinstance(exc, drf.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return _answer("RequestNotValid", _("The request body is not valid."), errors=errors)
    if isinstance(exc, drf.ParseError):
        return _answer("RequestNotValid", str(exc.detail), errors={})
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        response = _answer("NotAuthenticated", str(exc.detail))
        response["WWW-Authenticate"] = "Api-Key"
        return response
    if isinstance(exc, drf.Throttled):
        response = _answer("RateLimited", _("Rate limit exceeded."))
        response["Retry-After"] = str(max(int(exc.wait or 1), 1))  # type: ignore[attr-defined]  # set by Throttled
        return response
    if isinstance(exc, (Http404, drf.NotFound)):
        return _answer("NotFound", _("Not found."))
    if isinstance(exc, drf.MethodNotAllowed):
        return _answer("MethodNotAllowed", str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return _answer("UnsupportedMediaType", str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return _answer("NotAcceptable", str(exc.detail))
    if isinstance(exc, drf.PermissionDenied):
        return _answer("PermissionDenied", str(exc.detail))
    if isinstance(exc, drf.APIException):
        return _answer("HttpError", str(exc.detail), status=exc.status_code)
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return server_error_response()


def server_error_response() -> Response:
    return _answer("InternalError", "Something went wrong on our side; nothing was changed.")


def api_not_found(request, exception=None):
    error = error_type("NotFound")
    body = problem_body(status=404, code=error.code, title=error.title, detail=_("Not found."))
    return JsonResponse(body, status=404, content_type=PROBLEM)


def api_server_error(request):
    error = error_type("InternalError")
    body = problem_body(status=500, code=error.code, title=error.title,
                        detail=_("Something went wrong on our side; nothing was changed."))
    return JsonResponse(body, status=500, content_type=PROBLEM)
