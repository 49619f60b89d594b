"""Logging: a filter that scrubs anything shaped like a code, JSON lines, one line per request.

No plaintext code may reach a log line (invariant 3 of docs/invariants.md). The services never log
one; this filter is the second line of defence for what they do not control (a
library echoing its input, an exception message, a stack trace). It runs on every
handler, so it sees every record, whichever logger wrote it.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid

from pythonjsonlogger.json import JsonFormatter

# A run of letters and digits, optionally grouped by single hyphens or underscores
# (ABCD-EFGH-JKMN-PQRS-T), or by single spaces when every group is upper case or
# digits (ABCD EFGH JKMN), as codes are printed, typed or imported.
_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"[A-Z0-9]{3,8}(?: [A-Z0-9]{3,8}){2,}"
    r"|[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*"
    r")(?![A-Za-z0-9])"
)
_SEPARATORS = re.compile(r"[-_ ]")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T\d{2}|$)")
# Shorter than any code the service generates (80 bits: 17 characters) or accepts on
# import without a guessability warning; long enough to leave ids and words alone.
MIN_SCRUBBED_LENGTH = 10
REDACTED = "[redacted]"


def _looks_like_code(token: str) -> bool:
    compact = _SEPARATORS.sub("", token)
    if len(compact) < MIN_SCRUBBED_LENGTH or _UUID.match(token) or _ISO_DATE.match(token):
        return False
    # A code holds a digit, or is upper case (the generation alphabet); words and
    # dotted or snake_case names of the code base are neither.
    return any(c.isdigit() for c in compact) or compact.isupper()


def scrub(text: str) -> str:
    """`text` with every code-shaped token replaced by [redacted]."""
    return _CANDIDATE.sub(lambda m: REDACTED if _looks_like_code(m.group(0)) else m.group(0), text)


_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


class CodeScrubbingFilter(logging.Filter):
    """Rewrite each record so that no code-shaped token survives in it.

    The message is formatted once and scrubbed (arguments included), a traceback is
    rendered and scrubbed, and string values passed in `extra` are scrubbed.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep its parts, scrubbed
            message = f"{record.msg} {record.args}"
        record.msg, record.args = scrub(message), None
        if record.exc_info:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, scrub(value))
        return True


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_record, record, message_dict) -> None:
        super().add_fields(log_record, record, message_dict)
        if record.exc_text and "exc_info" not in log_record:
            log_record["exc_info"] = record.exc_text


request_logger = logging.getLogger("vouchers.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_HEADER = "X-Request-ID"


def _caller_of(request) -> str:
    user = getattr(request, "user", None)
    identity = getattr(user, "identity", None)  # an API caller (storefront or partner)
    if identity:
        return identity
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return "anonymous"


class RequestLogMiddleware:
    """One log line per request: request id, caller, method, path, status, duration.

    The request id comes from the proxy's X-Request-ID when it looks like one, else a
    new UUID; it is returned in the response header. The query string is not logged.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        request_logger.info(
            "%s %s %s %sms", request.method, request.path, response.status_code, duration_ms,
            extra={
                "request_id": request.request_id, "caller": _caller_of(request), "method": request.method,
                "path": request.path, "status": response.status_code, "duration_ms": duration_ms,
            },
        )
        return response
