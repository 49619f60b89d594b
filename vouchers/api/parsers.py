"""The API's JSON parser: bounded in size and in nesting depth.

The request-size middleware (`vouchers.api.middleware`) refuses a body whose declared
length is over API_MAX_BODY_BYTES before any view runs; this parser is the second
guard (it never reads more than the limit plus one byte). Nesting is checked on the
raw text before `json.loads`, so a body like `[[[[...]]]]` a thousand levels deep is
a 400 `invalid_request`, not a RecursionError in the decoder or in whatever walks the
result later (the idempotency fingerprint, the serializers).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

MAX_JSON_DEPTH = 32


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True if brackets nest deeper than `limit` (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the usual body: too few brackets to nest that deep
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def read_bounded(stream, limit: int) -> bytes:
    """The body, never more than `limit` bytes of it read; PayloadTooLarge (413) if it is longer."""
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        from vouchers.api.errors import PayloadTooLarge  # errors imports DRF's views, which import us

        raise PayloadTooLarge.for_size(size=None, limit=limit)
    return raw


class BoundedJSONParser(JSONParser):
    """JSONParser that refuses bodies over API_MAX_BODY_BYTES (413) and deep nesting (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = read_bounded(stream, int(settings.API_MAX_BODY_BYTES))
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if json_depth_exceeds(text, MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep.")
        try:
            return json.loads(text)  # DRF's strict loads: NaN and Infinity are refused
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
