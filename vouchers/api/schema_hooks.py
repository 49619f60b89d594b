"""OpenAPI post-processing shared by every API under /api/."""

from __future__ import annotations

from django.conf import settings

BODY_LIMIT = "413"


def document_body_limit(result, generator, request, public):
    """Every operation taking a body may answer 413 `payload_too_large` (ApiProblemMiddleware)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            problem = {"schema": {"$ref": "#/components/schemas/ProblemOutput"}}
            operation.setdefault("responses", {}).setdefault(BODY_LIMIT, {
                "description": f"`payload_too_large`: the body is over {settings.API_MAX_BODY_BYTES} bytes.",
                "content": {"application/problem+json": problem},
            })
    return result
