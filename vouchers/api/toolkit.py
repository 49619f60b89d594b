"""The public API toolkit: pieces every API of the service is written with, whichever app owns it.

Nothing here knows an endpoint, a model or a caller. Another app's API (the partner
API) may import this module and `vouchers.api.base` (the request pipeline it builds
on), and no other module of `vouchers.api` (docs/architecture.md, "The dependency
rule"; checked by import-linter, pyproject.toml).

- the OpenAPI vocabulary of an operation: `ProblemOutput` (the problem+json body),
  `problem` and `documented` (error answers declared as application/problem+json),
  the errors every authenticated or idempotent operation may answer with
  (`COMMON_ERRORS`, `IDEMPOTENCY_ERRORS`) and the headers (`IDEMPOTENCY_KEY`,
  `replayed`, `RETRY_AFTER`);
- `BoundedTextParser`: a text body read no further than a size limit named by a
  setting (413 `payload_too_large` beyond it), as the JSON parser is bounded.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.parsers import BaseParser

from vouchers.api.errors import PROBLEM
from vouchers.api.parsers import read_bounded


class ProblemOutput(serializers.Serializer):
    """application/problem+json (RFC 9457) with a stable machine-readable `code`."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()
    # A field of the problem body (DRF takes declared fields off the class, so it does not
    # shadow Serializer.errors at run time).
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Validation errors by field (400).")
    available = serializers.IntegerField(required=False, help_text="Codes in stock (out_of_stock).")
    reasons = serializers.ListField(child=serializers.CharField(), required=False,
                                    help_text="Why fraud checks refused (fraud_denied).")
    redeemed_at = serializers.DateTimeField(required=False, help_text="First redemption (already_redeemed).")
    max_bytes = serializers.IntegerField(required=False,
                                         help_text="Largest body accepted, in bytes (payload_too_large).")


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
    description="1-255 characters, unique per intended effect. A replay with the same body returns "
    "the first response with `Idempotent-Replayed: true`; another body is 422; while the first "
    "attempt runs, 409.",
)


def replayed(status: int) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotent-Replayed", str, OpenApiParameter.HEADER, response=[status], enum=["true"],
        description="`true` when this response is the stored first response to the same key.",
    )


RETRY_AFTER = OpenApiParameter(
    "Retry-After", int, OpenApiParameter.HEADER, response=[429, 503],
    description="Seconds to wait before retrying.",
)


def problem(description: str, *, retry_after: bool = False) -> OpenApiResponse:
    return OpenApiResponse(
        response=ProblemOutput, description=description + (
            " Header `Retry-After` gives the seconds to wait." if retry_after else ""
        ),
    )


def documented(responses: dict) -> dict:
    """The responses of an operation, errors declared as application/problem+json (as sent)."""
    return {(code, PROBLEM) if code >= 400 else code: response for code, response in responses.items()}


COMMON_ERRORS = {
    400: problem("`invalid_request` (with `errors`) or `idempotency_key_required`."),
    401: problem("`not_authenticated`: missing or wrong API key."),
    429: problem(
        "`rate_limited`, or `risk_unavailable` where fraud checks run and their counter store "
        "is unreachable (they fail closed).", retry_after=True,
    ),
    503: problem("`service_unavailable`: rate limiting unavailable, failing closed.", retry_after=True),
}
IDEMPOTENCY_ERRORS = {
    409: problem("`idempotency_in_progress`."),
    422: problem("`idempotency_key_reused`: same key, different body."),
}


class BoundedTextParser(BaseParser):
    """A text body, read no further than the setting `limit_setting` names (413 beyond it).

    Subclasses name the `media_type` they accept and the setting of their limit. The
    view taking such a body names the same setting as its `max_body_setting`, so the
    request-size middleware lets a declared length up to that limit through.
    """

    limit_setting = "API_MAX_BODY_BYTES"
    encoding = "utf-8-sig"  # a byte-order mark (spreadsheet exports) is not part of the text

    def parse(self, stream, media_type=None, parser_context=None):
        return read_bounded(stream, int(getattr(settings, self.limit_setting))).decode(self.encoding)
