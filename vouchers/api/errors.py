"""One place that turns every error into application/problem+json (RFC 9457).

Domain errors keep their stable `code`; the request's transaction is rolled back
unless the error says the service kept its work on purpose. Anything unexpected is
a 500 with nothing internal in it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.http import Http404, JsonResponse
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import set_rollback

from vouchers.exceptions import DomainError

logger = logging.getLogger("vouchers.api")
PROBLEM = "application/problem+json"


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    title = _("Too many requests")


class RateLimiterUnavailable(DomainError):
    """The shared rate-limit store is unreachable: refuse rather than run unlimited."""

    code = "service_unavailable"
    status = 503
    title = _("Service temporarily unavailable")


class IdempotencyKeyRequired(DomainError):
    code = "idempotency_key_required"
    status = 400
    title = _("Idempotency-Key header required")


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422
    title = _("Idempotency-Key reused with a different request")


class IdempotencyInProgress(DomainError):
    code = "idempotency_in_progress"
    status = 409
    title = _("A request with this Idempotency-Key is still running")


class PayloadTooLarge(DomainError):
    """A request body over API_MAX_BODY_BYTES: refused before it is parsed."""

    code = "payload_too_large"
    status = 413
    title = _("Payload too large")

    @classmethod
    def for_size(cls, *, size: int | None, limit: int) -> PayloadTooLarge:
        if size is None:
            detail = _("The request body is too large; at most %(limit)s are accepted.") % {"limit": limit}
        else:
            detail = _("The request body is %(size)s bytes; at most %(limit)s are accepted.") % {
                "size": size, "limit": limit}
        return cls(str(detail), max_bytes=limit)


def problem_body(*, status: int, code: str, title: str, detail: str, extra: dict | None = None) -> dict:
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


def _plain(status: int, code: str, title: str, detail: str, **extra) -> Response:
    return Response(problem_body(status=status, code=code, title=title, detail=detail, extra=extra),
                    status=status, content_type=PROBLEM)


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        if exc.rollback:
            set_rollback()
        return problem_response(exc)
    set_rollback()
    if isinstance(exc, drf.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return _plain(400, "invalid_request", _("Invalid request"), _("The request body is not valid."),
                      errors=errors)
    if isinstance(exc, drf.ParseError):
        return _plain(400, "invalid_request", _("Invalid request"), str(exc.detail), errors={})
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        response = _plain(401, "not_authenticated", _("Not authenticated"), str(exc.detail))
        response["WWW-Authenticate"] = "Api-Key"
        return response
    if isinstance(exc, drf.Throttled):
        response = _plain(429, "rate_limited", _("Too many requests"), _("Rate limit exceeded."))
        response["Retry-After"] = str(max(int(exc.wait or 1), 1))
        return response
    if isinstance(exc, (Http404, drf.NotFound)):
        return _plain(404, "not_found", _("Not found"), _("Not found."))
    if isinstance(exc, drf.MethodNotAllowed):
        return _plain(405, "method_not_allowed", _("Method not allowed"), str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return _plain(415, "unsupported_media_type", _("Unsupported media type"), str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return _plain(406, "not_acceptable", _("Not acceptable"), str(exc.detail))
    if isinstance(exc, drf.PermissionDenied):
        return _plain(403, "permission_denied", _("Permission denied"), str(exc.detail))
    if isinstance(exc, drf.APIException):
        return _plain(exc.status_code, "error", _("Error"), str(exc.detail))
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return server_error_response()


def server_error_response() -> Response:
    return _plain(500, "internal_error", _("Internal server error"),
                  "Something went wrong on our side; nothing was changed.")


def api_not_found(request, exception=None):
    body = problem_body(status=404, code="not_found", title=_("Not found"), detail=_("Not found."))
    return JsonResponse(body, status=404, content_type=PROBLEM)


def api_server_error(request):
    body = problem_body(status=500, code="internal_error", title=_("Internal server error"),
                        detail=_("Something went wrong on our side; nothing was changed."))
    return JsonResponse(body, status=500, content_type=PROBLEM)
