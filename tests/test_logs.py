"""Logs: code-shaped tokens are scrubbed from every record; JSON lines; one line per request."""

import json
import logging

import pytest

from config.logs import scrub
from vouchers.codeformat import CodeFormat


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def generated_code(**fmt) -> str:
    code_format = CodeFormat(**fmt)
    return code_format.display(code_format.random_body())


@pytest.mark.parametrize("fmt", [{}, {"group": 4}, {"prefix": "GIFT", "group": 5, "check_char": True},
                                 {"alphabet": "0123456789", "length": 16}])
def test_a_generated_code_is_scrubbed_from_message_args_traceback_and_extra(log_stream, fmt):
    code = generated_code(**fmt)
    logger = logging.getLogger("tests.logs")
    logger.warning("typed %s by mistake", code, extra={"input": f"code={code}"})
    try:
        raise ValueError(f"bad code {code}")
    except ValueError:
        logger.exception("failed on %r", code)
    text = log_stream.getvalue()
    assert code not in text
    assert code.replace("-", "") not in text
    first, second = lines(log_stream)
    assert first["message"] == "typed [redacted] by mistake"
    assert first["input"] == "code=[redacted]"
    assert second["message"] == "failed on '[redacted]'"
    assert "ValueError: bad code [redacted]" in second["exc_info"]


@pytest.mark.parametrize("text", [
    "issuance 3f2b8c1e-9a4d-4e2b-8f7a-1c2d3e4f5a6b issued to cust-42",
    "batch 1234 voided by user:7 at 2026-11-30T01:02:03.456789+00:00",
    "unhandled error in RedemptionCreateApi: connection_refused",
    "GET /api/v1/issuances/ 200 12.5ms",
])
def test_ids_times_and_words_are_left_alone(text):
    assert scrub(text) == text


def test_a_space_grouped_code_is_scrubbed():
    assert scrub("customer typed ABCD 2345 EFGH 6789 at the till") == "customer typed [redacted] at the till"


def test_one_json_line_per_request_with_id_caller_status_and_duration(log_stream, client, db):
    response = client.get("/api/v1/products/", HTTP_X_REQUEST_ID="req-abc.123")
    request_lines = [line for line in lines(log_stream) if line["logger"] == "vouchers.request"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert response["X-Request-ID"] == "req-abc.123"
    assert {k: line[k] for k in ("request_id", "caller", "method", "path", "status", "level")} == {
        "request_id": "req-abc.123", "caller": "anonymous", "method": "GET", "path": "/api/v1/products/",
        "status": 401, "level": "INFO",
    }
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["time"]


def test_an_offered_request_id_that_does_not_look_like_one_is_replaced(log_stream, client, db):
    response = client.get("/api/v1/products/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert len(response["X-Request-ID"]) == 32
    assert "\n" not in response["X-Request-ID"]
