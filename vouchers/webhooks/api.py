"""`/api/v1/webhooks/endpoints/`: a storefront (or partner) manages its own endpoints.

Creating one is an idempotent POST like every state-changing POST. Its response is
the only place the secret appears: the idempotency record keeps the response without
it, and a replay opens the sealed secret again (as a replayed issuance decrypts its
codes again), so no secret rests in clear in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.errors import NotFound
from vouchers.api.base import IdempotentApiView, IsStorefrontOrPartner, StorefrontApiView
from vouchers.api.toolkit import (
    COMMON_ERRORS,
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_KEY,
    RETRY_AFTER,
    documented,
    problem,
    replayed,
)
from vouchers.models import Storefront
from vouchers.webhooks.events import EVENT_CHOICES
from vouchers.webhooks.services import endpoints
from vouchers.webhooks.services.delivery import live_secrets

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass


class EndpointInput(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), min_length=1,
                                   max_length=len(EVENT_CHOICES))
    enabled = serializers.BooleanField(required=False, default=True)


class EndpointOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class EndpointListOutput(serializers.Serializer):
    results = EndpointOutput(many=True)


class CreatedEndpointOutput(EndpointOutput):
    secret = serializers.CharField(help_text="The signing secret. Shown in this response only.")


class _OwnedEndpoints:
    permission_classes: Sequence[_PermissionClass] = [IsStorefrontOrPartner]

    def owned(self):
        caller = self.caller
        if caller.kind == "storefront":
            return endpoints.owned_endpoints(storefront_id=caller.storefront_id)
        return endpoints.owned_endpoints(partner_id=caller.partner_id)


class EndpointCollectionApi(_OwnedEndpoints, IdempotentApiView):
    @extend_schema(
        operation_id="webhook_endpoints_list", summary="Your webhook endpoints (no secrets)",
        parameters=[RETRY_AFTER],
        responses=documented({200: EndpointListOutput, 401: COMMON_ERRORS[401],
                              429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503]}),
    )
    def get(self, request):
        rows = self.owned().order_by("created_at", "pk")
        return Response({"results": EndpointOutput(rows, many=True).data})

    @extend_schema(
        operation_id="webhook_endpoints_create", summary="Add a webhook endpoint; its secret is shown once",
        parameters=[IDEMPOTENCY_KEY, replayed(201), RETRY_AFTER], request=EndpointInput,
        responses=documented({
            201: OpenApiResponse(CreatedEndpointOutput), **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            400: problem("`invalid_request` (with `errors`): unknown event, or a URL that is not https "
                         "or resolves to a private, loopback or link-local address."),
        }),
    )
    def post(self, request):
        response = super().post(request)
        if response.status_code == 201:
            # Only the caller sees the secret; the stored record of this response lacks it.
            secret = getattr(self, "_new_secret", None)
            if secret is None:  # a replay: open the sealed secret again
                secret = live_secrets(self.owned().get(pk=response.data["id"]))[0]
            response.data = {**response.data, "secret": secret}
        return response

    def perform(self, request):
        data = self.validated(EndpointInput)
        caller = self.caller
        storefront = Storefront.objects.get(pk=caller.storefront_id) if caller.kind == "storefront" else None
        created = endpoints.create_endpoint(
            url=data["url"], events=data["events"], enabled=data["enabled"], storefront=storefront,
            partner_id=caller.partner_id if caller.kind == "partner" else None,
        )
        self._new_secret = created.secret
        return Response(EndpointOutput(created.endpoint).data, status=201)


class RotationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="Until then each delivery carries two `v1` signatures: the new secret's and the old one's.",
    )


class RotatedSecretOutput(RotationOutput):
    secret = serializers.CharField(help_text="The new signing secret. Shown in this response only.")


class EndpointSecretRotationApi(_OwnedEndpoints, IdempotentApiView):
    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="A new signing secret, shown once; the old one keeps signing for a day",
        parameters=[IDEMPOTENCY_KEY, replayed(200), RETRY_AFTER], request=None,
        responses=documented({
            200: OpenApiResponse(RotatedSecretOutput), **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            404: problem("`not_found`."),
        }),
    )
    def post(self, request, endpoint_id):
        response = super().post(request, endpoint_id)
        if response.status_code == 200:
            # As on creation: the stored record of this response lacks the secret.
            secret = getattr(self, "_new_secret", None)
            if secret is None:  # a replay: open the sealed (current) secret again
                secret = live_secrets(self.owned().get(pk=response.data["id"]))[0]
            response.data = {**response.data, "secret": secret}
        return response

    def perform(self, request, endpoint_id):
        endpoint = self.owned().filter(pk=endpoint_id).first()
        if endpoint is None:
            raise NotFound("No such webhook endpoint.")
        self._new_secret = endpoints.rotate_secret(endpoint=endpoint)
        endpoint.refresh_from_db()
        return Response(RotationOutput(endpoint).data, status=200)


class EndpointChangeInput(serializers.Serializer):
    url = serializers.URLField(max_length=2000, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), min_length=1,
                                   max_length=len(EVENT_CHOICES), required=False)
    enabled = serializers.BooleanField(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send at least one of url, events, enabled.")
        return attrs


class EndpointDetailApi(_OwnedEndpoints, StorefrontApiView):
    def _owner(self) -> dict:
        caller = self.caller
        return {"storefront_id": caller.storefront_id if caller.kind == "storefront" else None,
                "partner_id": caller.partner_id if caller.kind == "partner" else None}

    @extend_schema(
        operation_id="webhook_endpoints_retrieve", summary="One of your webhook endpoints (no secret)",
        parameters=[RETRY_AFTER],
        responses=documented({200: EndpointOutput, 401: COMMON_ERRORS[401], 404: problem("`not_found`."),
                              429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503]}),
    )
    def get(self, request, endpoint_id):
        endpoint = self.owned().filter(pk=endpoint_id).first()
        if endpoint is None:
            raise NotFound("No such webhook endpoint.")
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_partial_update",
        summary="Change an endpoint's URL or events, or pause it (`enabled: false`)",
        parameters=[RETRY_AFTER], request=EndpointChangeInput,
        responses=documented({
            200: EndpointOutput, 401: COMMON_ERRORS[401], 404: problem("`not_found`."),
            400: problem("`invalid_request` (with `errors`): as on creation, or nothing to change."),
            429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503],
        }),
    )
    def patch(self, request, endpoint_id):
        data = self.validated(EndpointChangeInput)
        endpoint = endpoints.update_endpoint(endpoint_id=endpoint_id, **self._owner(), **data)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_destroy", summary="Delete one of your webhook endpoints",
        parameters=[RETRY_AFTER],
        responses=documented({204: None, 401: COMMON_ERRORS[401], 404: problem("`not_found`."),
                              429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503]}),
    )
    def delete(self, request, endpoint_id):
        endpoints.delete_endpoint(endpoint_id=endpoint_id, **self._owner())
        return Response(status=204)



