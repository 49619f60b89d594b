"""Under /api/: a body-size limit applied before anything reads the body, and
problem+json for every error answer, whatever the profile.

Django answers some errors itself, before or around the API's views: an unknown URL
(under DEBUG an HTML debug page), a POST to a path missing its trailing slash (a
redirect, or under DEBUG a RuntimeError page), a bad Host header, a crash outside a
DRF view. A storefront's client expects problem+json with a stable `code` for every
one of them, so this middleware rewrites any non-problem error answer under /api/.
The admin and every other path keep Django's pages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, get_urlconf, is_valid_path, resolve
from django.utils import translation

from config import metrics
from vouchers.api.errors import PROBLEM, PayloadTooLarge, problem_body

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise

logger = logging.getLogger("vouchers.api")

API_PREFIX = "/api/"
# Error answers Django or gunicorn-facing code may produce, as problem codes.
CODES_BY_STATUS = {
    400: ("bad_request", "Bad request", "The request could not be understood."),
    403: ("permission_denied", "Permission denied", "You may not do this."),
    404: ("not_found", "Not found", "Not found."),
    405: ("method_not_allowed", "Method not allowed", "This method is not allowed here."),
    413: ("payload_too_large", "Payload too large", "The request body is too large."),
    500: ("internal_error", "Internal server error",
          "Something went wrong on our side; nothing was changed."),
}
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def problem_json(status: int, *, code: str | None = None, title: str | StrPromise | None = None,
                 detail: str | StrPromise | None = None, **extra) -> JsonResponse:
    default_code, default_title, default_detail = CODES_BY_STATUS.get(
        status, ("error", "Error", "The request failed.")
    )
    body = problem_body(status=status, code=code or default_code, title=title or default_title,
                        detail=detail or default_detail, extra=extra)
    return JsonResponse(body, status=status, content_type=PROBLEM)


def view_body_limit(path: str) -> int:
    """The larger body limit a view may name (`max_body_setting`, a setting's name), else 0.

    Asked only for a body over API_MAX_BODY_BYTES, so an ordinary request resolves
    nothing more here. One view names one: a partner's reconciliation CSV.
    """
    try:
        match = resolve(path)
    except Resolver404:
        return 0
    setting = getattr(getattr(match.func, "view_class", None), "max_body_setting", None)
    return int(getattr(settings, setting)) if setting else 0


class ApiProblemMiddleware:
    """Place right after SecurityMiddleware, before anything that may read the body."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        refusal = self._refuse_before_reading(request)
        if refusal is not None:
            return refusal
        response = self.get_response(request)
        observe_api_answer(request, response)
        return self._as_problem(response)

    @staticmethod
    def _refuse_before_reading(request: HttpRequest) -> HttpResponse | None:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return problem_json(400, detail="Content-Length is not a number.")
        limit = int(settings.API_MAX_BODY_BYTES)
        if length > limit:
            limit = max(limit, view_body_limit(request.path_info))
        if length > limit:
            # LocaleMiddleware has not run yet: answer in the request's language here.
            with translation.override(translation.get_language_from_request(request)):
                exc = PayloadTooLarge.for_size(size=length, limit=limit)
                response = problem_json(413, code=exc.code, title=exc.title, detail=exc.detail, **exc.extra)
            response["Connection"] = "close"  # the unread body must not be taken for the next request
            return response
        # A path that resolves nowhere and lacks its slash would be redirected (or, for
        # a POST under DEBUG, crash) in CommonMiddleware: answer 404 here instead.
        path = request.path_info
        if not path.endswith("/") and not is_valid_path(path, get_urlconf()):
            return problem_json(404)
        return None

    @staticmethod
    def _as_problem(response: HttpResponse) -> HttpResponse:
        if response.status_code < 400 or getattr(response, "streaming", False):
            return response
        if response.get("Content-Type", "").startswith(PROBLEM):
            return response
        problem = problem_json(response.status_code)
        for header in KEPT_HEADERS:
            if header in response:
                problem[header] = response[header]
        return problem


# Answers of the storefront API that are business facts, counted by the API middleware
# from what the client received (idempotent replays are not counted twice).
ISSUING_PATHS = ("/api/v1/issuances/",)


def observe_api_answer(request, response) -> None:
    """Count issued, redeemed and out-of-stock answers of the storefront API."""
    if request.method != "POST" or response.get("Idempotent-Replayed") == "true":
        return
    path, status = request.path_info, response.status_code
    data = getattr(response, "data", None)
    if not isinstance(data, dict) or not path.startswith("/api/v1/"):
        return
    if status == 409 and data.get("code") == "out_of_stock":
        metrics.OUT_OF_STOCK.inc()
    elif status in (200, 201) and data.get("status") == "issued" and isinstance(data.get("codes"), list):
        if path == "/api/v1/issuances/" or path.endswith("/confirm/"):
            metrics.CODES_ISSUED.inc(len(data["codes"]))
    elif status == 201 and path == "/api/v1/redemptions/":
        metrics.CODES_REDEEMED.inc()
