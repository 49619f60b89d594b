from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django_ratelimit.decorators import ratelimit
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from config.views import SchemaView, landing
from vouchers.ops import views as ops_views

# Password guessing on the admin's login form: django-ratelimit, per client address
# (the API counts its own limits in its one Redis round trip, vouchers/api/ratelimits.py).
admin_login = ratelimit(
    key="ip", rate=lambda _group, _request: settings.ADMIN_LOGIN_RATE, method="POST", block=True
)(admin.site.login)

urlpatterns = [
    path("", landing, name="landing"),
    path("admin/login/", admin_login, name="admin-login"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/partner/", include("partners.api.urls")),
    path("api/v1/", include("vouchers.api.urls")),
    path("api/v1/webhooks/", include("vouchers.webhooks.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="vouchers/redoc.html"),
        name="api-redoc",
    ),
]

handler404 = "config.error_pages.not_found"
handler500 = "config.error_pages.server_error"
