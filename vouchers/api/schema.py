"""OpenAPI description of the API-key scheme (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
