"""Each error's code, status and title are declared once (config.errors) and read from there."""

from __future__ import annotations

import importlib

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions as drf

from config.errors import ERROR_TYPES, STATUS_BY_CODE, DomainError
from vouchers.api import middleware
from vouchers.api.errors import api_exception_handler
from vouchers.api.schema import document_error_codes

# Every module that declares domain errors.
ERROR_MODULES = [
    "config.errors", "vouchers.exceptions", "vouchers.api.errors", "vouchers.services.batch_validity",
    "vouchers.services.api_keys", "vouchers.services.reveal", "vouchers.services.batch_status",
    "vouchers.webhooks.services.endpoints", "fraud.exceptions", "fraud.services.lockouts",
    "partners.exceptions",
]


def all_domain_errors() -> list[type[DomainError]]:
    for name in ERROR_MODULES:
        importlib.import_module(name)
    found, todo = [], [DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


# Entries of the table for answers the API boundary writes itself (no exception class).
BOUNDARY_ANSWERS = {
    "RequestNotValid", "NotAuthenticated", "PermissionDenied", "MethodNotAllowed", "NotAcceptable",
    "UnsupportedMediaType", "HttpError", "InternalError", "BadRequest",
}


def test_the_table_names_exactly_the_domain_errors_and_the_boundary_answers():
    # given every domain error class of the project
    names = {cls.__name__ for cls in all_domain_errors()}
    # then the table has an entry for each and no stale one
    assert set(ERROR_TYPES) - BOUNDARY_ANSWERS == names
    assert len(names) == len(all_domain_errors())  # class names are unique


def test_every_domain_error_takes_its_code_status_and_title_from_the_table():
    # given every domain error class of the project
    errors = all_domain_errors()
    # then each carries exactly its entry of the table
    mismatched = [
        cls.__name__ for cls in errors
        if (cls.code, cls.status, cls.title) != (
            ERROR_TYPES[cls.__name__].code, ERROR_TYPES[cls.__name__].status, ERROR_TYPES[cls.__name__].title)
    ]
    assert mismatched == []


def test_an_error_that_sets_its_own_status_is_refused_when_defined():
    with pytest.raises(TypeError, match="declare them in config.errors"):
        type("OutOfStock", (DomainError,), {"status": 418})


def test_an_error_missing_from_the_table_is_refused_when_defined():
    with pytest.raises(LookupError, match="NotInTheTable is not declared"):
        type("NotInTheTable", (DomainError,), {})


def test_a_code_has_one_status():
    # then the table maps each code to one status (`error` keeps the HTTP error's own)
    assert {code for code, status in STATUS_BY_CODE.items() if status is None} == {"error"}
    assert STATUS_BY_CODE["invalid_state"] == 409
    assert STATUS_BY_CODE["invalid_request"] == 400


@pytest.mark.parametrize(("exc", "name"), [
    (drf.ValidationError({"sku": ["required"]}), "RequestNotValid"),
    (drf.NotAuthenticated(), "NotAuthenticated"),
    (drf.MethodNotAllowed("PUT"), "MethodNotAllowed"),
    (drf.UnsupportedMediaType("text/plain"), "UnsupportedMediaType"),
    (drf.NotAcceptable(), "NotAcceptable"),
    (drf.PermissionDenied(), "PermissionDenied"),
    (drf.Throttled(wait=3), "RateLimited"),
    (drf.NotFound(), "NotFound"),
])
def test_the_handler_answers_drf_errors_with_their_entry(exc, name):
    # when the handler answers the error
    response = api_exception_handler(exc, {"view": None})
    # then status, code and title are the entry's
    entry = ERROR_TYPES[name]
    assert (response.status_code, response.data["status"], response.data["code"], response.data["title"]) == (
        entry.status, entry.status, entry.code, str(entry.title))


def test_an_unnamed_http_error_keeps_its_status_under_code_error():
    response = api_exception_handler(drf.APIException(), {"view": None})
    assert (response.status_code, response.data["code"], response.data["title"]) == (500, "error", "Error")


def test_the_middlewares_answers_use_codes_of_the_table_with_their_status():
    # given the answers the API middleware writes for errors Django gives before a view
    answers = {status: code for status, (code, _title, _detail) in middleware.CODES_BY_STATUS.items()}
    # then each is a code of the table answered with the same status
    assert {status: STATUS_BY_CODE.get(code) for status, code in answers.items()} == {
        status: status for status in answers}


def schema_with(description: str, status: str = "409") -> dict:
    return {
        "paths": {"/api/v1/things/": {"post": {"responses": {status: {"description": description}}}}},
        "components": {"schemas": {"ProblemOutput": {"properties": {"code": {"type": "string"},
                                                                    "available": {"type": "integer"}}}}},
    }


def test_a_schema_text_naming_a_code_under_another_status_fails_the_schema():
    # given a description that says `unknown_code` (404) is a 409
    with pytest.raises(ImproperlyConfigured, match="`unknown_code` is answered with 404"):
        document_error_codes(schema_with("`unknown_code` or `out_of_stock`."), None, None, True)


def test_a_schema_text_naming_an_unknown_code_fails_the_schema():
    with pytest.raises(ImproperlyConfigured, match="`out_of_stok` is no error code"):
        document_error_codes(schema_with("`out_of_stok` (with `available`)."), None, None, True)


def test_the_schema_lists_every_code_with_its_status():
    # when a correct schema is post-processed
    result = document_error_codes(schema_with("`out_of_stock` (with `available`)."), None, None, True)
    # then the problem's `code` enumerates the table's codes, each with its status
    code = result["components"]["schemas"]["ProblemOutput"]["properties"]["code"]
    assert code["enum"] == sorted(STATUS_BY_CODE)
    assert "- `out_of_stock` (409): Out of stock" in code["description"]


def test_a_docstring_that_names_an_errors_status_and_code_names_its_entry():
    # given the domain errors whose docstring opens with "<status> `<code>`:"
    import re

    stated = {
        cls.__name__: re.match(r"(\d{3}) `(\w+)`:", cls.__doc__ or "")
        for cls in all_domain_errors()
    }
    # then the status and code they state are the table's (a docstring cannot drift)
    drifted = [
        name for name, match in stated.items()
        if match and (int(match[1]), match[2]) != (ERROR_TYPES[name].status, ERROR_TYPES[name].code)
    ]
    assert sum(1 for match in stated.values() if match) > 10
    assert drifted == []
