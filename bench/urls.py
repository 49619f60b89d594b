"""The product's URLs plus the bench-only baseline endpoint."""

from django.urls import path

from bench.baseline.views import BaselineApi
from config.urls import handler404, handler500  # noqa: F401
from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    *product_urlpatterns,
    path("bench/baseline/", BaselineApi.as_view(), name="bench-baseline"),
]
