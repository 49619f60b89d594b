from django.urls import path

from vouchers.webhooks import api

app_name = "webhooks"

urlpatterns = [
    path("endpoints/", api.EndpointCollectionApi.as_view(), name="endpoints"),
    path("endpoints/<uuid:endpoint_id>/", api.EndpointDetailApi.as_view(), name="endpoint"),
    path(
        "endpoints/<uuid:endpoint_id>/rotate-secret/", api.EndpointSecretRotationApi.as_view(),
        name="endpoint-rotate-secret",
    ),
]
