"""Pages outside the admin and the API: the landing page and the schema as a browser shows it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.renderers import OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView


def landing(request: HttpRequest) -> HttpResponse:
    """`/`: where a newcomer starts; links to the admin, the API docs, the schema and health."""
    return render(request, "vouchers/landing.html")


class BrowserYamlRenderer(OpenApiYamlRenderer):
    """The same YAML, labelled text/plain so that a browser shows it instead of downloading it."""

    media_type = "text/plain"
    charset = "utf-8"
    format = "yaml"


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema; a browser (asking for text/html, no ?format) gets it as readable text.

    API clients keep the negotiated OpenAPI media types (YAML by default, JSON on request).
    """

    def perform_content_negotiation(self, request, force=False):
        accept = request.META.get("HTTP_ACCEPT", "")
        if "text/html" in accept and "format" not in request.query_params:
            renderer = BrowserYamlRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
