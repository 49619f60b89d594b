"""OpenAPI: the API-key scheme (drf-spectacular extension) and the schema's post-processing hooks."""

import re

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from config.errors import ERROR_TYPES, STATUS_BY_CODE


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "vouchers.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`Api-Key <key>`: a storefront key created in the admin.",
        }


def document_body_limit(result, generator, request, public):
    """Every operation that takes a body may answer 413 `payload_too_large`.

    The limit is enforced before any view runs (vouchers.api.middleware), so no view
    declares it; this hook writes it into the schema once, for all of them.
    """
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("413", {
                    "description": "`payload_too_large`: the body is over the API's size limit "
                                   "(`max_bytes` says how many bytes are accepted).",
                    "content": {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/ProblemOutput"}}},
                })
    return result


def document_error_codes(result, generator, request, public):
    """The schema's error texts are checked against `config.errors`, and list it.

    Every code a problem response's description names in backticks must be a code of
    the table answered with that response's status (a word in backticks that is no code
    must be a field of `ProblemOutput` or a header of the response): a description that
    drifts from what the handler answers fails the schema's generation. `ProblemOutput`'s
    `code` then lists every code with its status and titles, from the same table.
    """
    schemas = result.get("components", {}).get("schemas", {})
    problem = schemas.get("ProblemOutput", {})
    fields = set(problem.get("properties", {}))
    wrong = []
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if not str(status).isdigit() or int(status) < 400:
                    continue
                headers = set(response.get("headers", {}))
                for word in re.findall(r"`([^`]+)`", response.get("description", "")):
                    where = f"{method.upper()} {path} {status}"
                    if word in STATUS_BY_CODE:
                        if STATUS_BY_CODE[word] not in (None, int(status)):
                            wrong.append(f"{where}: `{word}` is answered with {STATUS_BY_CODE[word]}")
                    elif word not in fields and word not in headers:
                        wrong.append(f"{where}: `{word}` is no error code of config.errors "
                                     "and no field of ProblemOutput")
    if wrong:
        raise ImproperlyConfigured("error texts of the schema do not match the errors:\n" + "\n".join(wrong))
    if "code" in fields:
        titles: dict[str, list[str]] = {}
        for error in ERROR_TYPES.values():
            titles.setdefault(error.code, [])
            if str(error.title) not in titles[error.code]:
                titles[error.code].append(str(error.title))
        lines = [
            f"- `{code}` ({STATUS_BY_CODE[code] or 'the status of the HTTP error'}): "
            f"{'; '.join(titles[code])}"
            for code in sorted(titles)
        ]
        problem["properties"]["code"].update({
            "enum": sorted(titles),
            "description": "Stable and machine-readable; each code has one HTTP status:\n\n"
                           + "\n".join(lines),
        })
    return result
