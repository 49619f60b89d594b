"""The published OpenAPI schema describes the whole API contract (docs/api.md)."""

from __future__ import annotations

import json

import pytest
import yaml
from django.test import Client

API_PATHS = [
    "/api/v1/products/",
    "/api/v1/issuances/",
    "/api/v1/issuances/{issuance_id}/",
    "/api/v1/issuances/{issuance_id}/confirm/",
    "/api/v1/issuances/{issuance_id}/cancel/",
    "/api/v1/codes/check/",
    "/api/v1/redemptions/",
    "/api/v1/redemptions/{redemption_id}/",
    "/api/v1/redemptions/{redemption_id}/reversal/",
    "/api/v1/webhooks/endpoints/",
    "/api/v1/webhooks/endpoints/{endpoint_id}/",
    "/api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret/",
    # partner endpoints (settlement)
    "/api/v1/partner/agreements/",
    "/api/v1/partner/statements/",
    "/api/v1/partner/statements/{statement_id}/",
    "/api/v1/partner/statements/{statement_id}/lines/",
    "/api/v1/partner/statements/{statement_id}/lines.csv",
    "/api/v1/partner/statements/{statement_id}/document/",
    "/api/v1/partner/statements/{statement_id}/confirm/",
    "/api/v1/partner/statements/{statement_id}/disputes/",
    "/api/v1/partner/statements/{statement_id}/reconcile/",
    "/api/v1/partner/keys/",
    "/api/v1/partner/ledger/",
]
# Every stable error `code` the API promises (docs/api.md).
API_ERROR_CODES = [
    "not_authenticated",
    "invalid_request",
    "rate_limited",
    "idempotency_key_required",
    "idempotency_key_reused",
    "idempotency_in_progress",
    "unknown_product",
    "out_of_stock",
    "fraud_denied",
    "reservation_expired",
    "invalid_state",
    "content_mismatch",
    "dispute_window_closed",
    "unknown_code",
    "already_redeemed",
    "code_expired",
    "code_void",
    "too_many_attempts",
    "already_reversed",
]
# The POSTs that change state, as (path, method): each requires an Idempotency-Key.
IDEMPOTENT_OPERATIONS = [
    "/api/v1/issuances/",
    "/api/v1/issuances/{issuance_id}/confirm/",
    "/api/v1/issuances/{issuance_id}/cancel/",
    "/api/v1/redemptions/",
    "/api/v1/redemptions/{redemption_id}/reversal/",
    "/api/v1/webhooks/endpoints/",
    "/api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret/",
    "/api/v1/partner/statements/{statement_id}/confirm/",
    "/api/v1/partner/statements/{statement_id}/disputes/",
    "/api/v1/partner/statements/{statement_id}/reconcile/",
]
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema_response():
    # The schema is built from code, not from the database: one fetch serves every test.
    return Client().get("/api/schema/")


@pytest.fixture(scope="module")
def schema(schema_response) -> dict:
    return yaml.safe_load(schema_response.content)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def header_parameters(operation: dict) -> dict[str, dict]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}


def test_schema_is_published(schema_response, schema):
    # given the service / when its schema is fetched without credentials
    # then it answers 200 with an OpenAPI 3 document
    assert schema_response.status_code == 200
    assert schema["openapi"].startswith("3.")


def test_schema_has_every_path_of_the_contract(schema):
    # then every path of the contract is described, and no other
    assert sorted(schema["paths"]) == sorted(API_PATHS)


def test_schema_names_every_error_code_of_the_contract(schema):
    # given the schema's text
    text = json.dumps(schema)
    # then every stable error code of the contract appears in it
    missing = [code for code in API_ERROR_CODES if code not in text]
    assert missing == []


def test_every_state_changing_post_requires_an_idempotency_key(schema):
    # then each POST that changes state documents a required Idempotency-Key header
    for path in IDEMPOTENT_OPERATIONS:
        parameter = header_parameters(schema["paths"][path]["post"]).get("Idempotency-Key")
        assert parameter is not None, path
        assert parameter["required"] is True, path
    # and the check, which changes nothing, does not ask for one
    check = schema["paths"]["/api/v1/codes/check/"]["post"]
    assert "Idempotency-Key" not in header_parameters(check)


def test_every_state_changing_post_documents_the_replay_header(schema):
    # then the success response of each idempotent POST documents Idempotent-Replayed: true
    for path in IDEMPOTENT_OPERATIONS:
        responses = schema["paths"][path]["post"]["responses"]
        success = [code for code in responses if code in ("200", "201")]
        assert len(success) == 1, path
        header = responses[success[0]].get("headers", {}).get("Idempotent-Replayed")
        assert header is not None, path
        assert header["schema"]["enum"] == ["true"], path


def test_every_rate_limited_response_documents_retry_after(schema):
    # then every operation documents 429, with a Retry-After header in seconds
    for path, method, operation in operations(schema):
        response = operation["responses"].get("429")
        assert response is not None, (method, path)
        assert response["headers"]["Retry-After"]["schema"]["type"] == "integer", (method, path)


def test_every_operation_requires_the_api_key(schema):
    # then the API-key scheme is defined as the Authorization header
    scheme = schema["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    # and every operation requires it and documents 401
    for path, method, operation in operations(schema):
        assert operation["security"] == [{"ApiKey": []}], (method, path)
        assert "401" in operation["responses"], (method, path)


def test_errors_are_documented_as_problem_json(schema):
    # then every error response is application/problem+json with the problem shape,
    # and every success response is application/json
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status == "204":  # no content, by definition
                assert "content" not in response, (path, method)
                continue
            media_types = list(response["content"])
            if int(status) >= 400:
                assert media_types == ["application/problem+json"], (method, path, status)
                body = response["content"]["application/problem+json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ProblemOutput"}, (method, path, status)
            else:
                expected = ["text/csv"] if path.endswith("lines.csv") else ["application/json"]
                assert media_types == expected, (method, path, status)


def test_product_list_documents_its_pages(schema):
    # then the product list is documented as the page it is, with its query parameters
    operation = schema["paths"]["/api/v1/products/"]["get"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert sorted(page["properties"]) == ["count", "next", "previous", "results"]
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/ProductOutput"}
    queries = sorted(p["name"] for p in operation["parameters"] if p["in"] == "query")
    assert queries == ["page", "page_size"]


def test_browsable_docs_are_served():
    # when the browsable documentation is fetched
    response = Client().get("/api/docs/")
    # then it answers 200 with an HTML page
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
