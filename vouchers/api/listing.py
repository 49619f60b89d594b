"""Reads of the storefront API: redemption detail, and issuance and redemption lists.

Lists are filtered by `order_ref`, `customer`, status and a time range, newest first,
cursor-paginated (stable under inserts, no COUNT over a large table). Every query is
scoped to the caller: another storefront's objects are not listed, and their detail
is 404 like an object that does not exist.

These reads are the storefront's: a partner key redeems through `POST redemptions/`
but its lists and detail answer it 404 `not_found` (a redemption names the
merchant's customer and order; a partner reconciles from its ledger feed instead).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from config.callers import Caller
from config.errors import NotFound
from vouchers.api.base import IsStorefront, IsStorefrontOrPartner, StorefrontApiView
from vouchers.api.serializers import RedemptionOutput
from vouchers.api.toolkit import COMMON_ERRORS, RETRY_AFTER, documented, problem
from vouchers.api.views import IssuanceCreateApi, RedemptionCreateApi
from vouchers.models import Issuance, Redemption


class StorefrontReadsAnyoneRedeems(BasePermission):
    """`redemptions/`: GET lists the storefront's (a partner key: 404), POST redeems (both keys)."""

    def has_permission(self, request, view) -> bool:
        if request.method == "POST":
            return IsStorefrontOrPartner().has_permission(request, view)
        return IsStorefront().has_permission(request, view)


# --- shapes -----------------------------------------------------------------------

class IssuanceSummaryOutput(serializers.Serializer):
    """An issuance in a list: without its codes (fetch one issuance to get them)."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Issuance.Status.choices)
    sku = serializers.CharField(source="product.sku")
    quantity = serializers.IntegerField()
    customer = serializers.CharField()
    order_ref = serializers.CharField()
    reserved_until = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class RedemptionDetailOutput(RedemptionOutput):
    order_ref = serializers.CharField()
    location = serializers.CharField()
    customer = serializers.CharField(source="code.issuance.customer", help_text="The issuance's customer.")
    issuance_id = serializers.UUIDField(source="code.issuance_id")
    status = serializers.SerializerMethodField(help_text="`redeemed`, or `reversed` once reversed.")
    reversed_at = serializers.DateTimeField(allow_null=True)

    def get_status(self, redemption: Redemption) -> str:
        return "reversed" if redemption.reversed_at else "redeemed"


class _ListFilters(serializers.Serializer):
    # The names of the time-range filters; each list's filters set them.
    after_field: str
    before_field: str

    order_ref = serializers.CharField(required=False, max_length=128)
    customer = serializers.CharField(required=False, max_length=128)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)
    cursor = serializers.CharField(required=False, max_length=1000)

    def validate(self, attrs):
        after, before = attrs.get(self.after_field), attrs.get(self.before_field)
        if after and before and after >= before:
            message = f"Must be later than {self.after_field}."
            raise serializers.ValidationError({self.before_field: [message]})
        return attrs


class IssuanceFilters(_ListFilters):
    after_field, before_field = "created_after", "created_before"
    status = serializers.ChoiceField(required=False, choices=Issuance.Status.choices)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class RedemptionFilters(_ListFilters):
    after_field, before_field = "redeemed_after", "redeemed_before"
    status = serializers.ChoiceField(required=False, choices=["redeemed", "reversed"])
    redeemed_after = serializers.DateTimeField(required=False)
    redeemed_before = serializers.DateTimeField(required=False)


class NewestFirst(CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def decode_cursor(self, request):
        """A cursor we did not make is a bad request (400), not DRF's 404."""
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise serializers.ValidationError({"cursor": ["Invalid cursor."]}) from None


class IssuancesNewestFirst(NewestFirst):
    ordering = ("-created_at", "-id")


class RedemptionsNewestFirst(NewestFirst):
    ordering = ("-redeemed_at", "-id")


def _choices(field: serializers.Field) -> list[tuple]:
    if not isinstance(field, serializers.ChoiceField):
        raise TypeError(f"{field!r} is not a choice field")
    return list(field.choices.items())


def _filter_parameters(filters: type[_ListFilters], what: str) -> list[OpenApiParameter]:
    after, before = filters.after_field, filters.before_field
    return [
        RETRY_AFTER,
        OpenApiParameter("order_ref", str, description="Only those with this order reference."),
        OpenApiParameter("customer", str, description="Only those of this customer reference."),
        OpenApiParameter("status", str, enum=[c[0] for c in _choices(filters().fields["status"])]),
        OpenApiParameter(after, str, description=f"ISO 8601: only {what} at or after this time."),
        OpenApiParameter(before, str, description=f"ISO 8601: only {what} before this time."),
        OpenApiParameter("cursor", str, description="The `next` or `previous` link's cursor."),
        OpenApiParameter("page_size", int, description="1-200, default 50."),
    ]


LIST_ERRORS = {
    400: problem("`invalid_request` (with `errors`): a filter is malformed, or the cursor is invalid."),
    404: problem("`not_found`: a partner key (these lists are the storefront's)."),
    401: COMMON_ERRORS[401], 429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503],
}


def _validated_filters(filters_class, request) -> dict:
    serializer = filters_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- issuances --------------------------------------------------------------------

class IssuanceCollectionApi(IssuanceCreateApi):
    """`issuances/`: POST issues (IssuanceCreateApi), GET lists the storefront's issuances."""

    pagination_class = IssuancesNewestFirst

    @extend_schema(
        operation_id="issuances_list", summary="Your issuances, newest first, without their codes",
        parameters=_filter_parameters(IssuanceFilters, "issuances created"),
        responses=documented({200: IssuanceSummaryOutput(many=True), **LIST_ERRORS}),
    )
    def get(self, request):
        data = _validated_filters(IssuanceFilters, request)
        rows = Issuance.objects.filter(storefront_id=self.caller.own_storefront_id).select_related("product")
        if "order_ref" in data:
            rows = rows.filter(order_ref=data["order_ref"])
        if "customer" in data:
            rows = rows.filter(customer=data["customer"])
        if "status" in data:
            rows = rows.filter(status=data["status"])
        if "created_after" in data:
            rows = rows.filter(created_at__gte=data["created_after"])
        if "created_before" in data:
            rows = rows.filter(created_at__lt=data["created_before"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(IssuanceSummaryOutput(page, many=True).data)


# --- redemptions ------------------------------------------------------------------

def _own_redemptions(caller: Caller):
    rows = Redemption.objects.select_related("code__batch__product", "code__issuance")
    return rows.filter(storefront_id=caller.own_storefront_id)


class RedemptionCollectionApi(RedemptionCreateApi):
    """`redemptions/`: POST redeems (RedemptionCreateApi), GET lists the caller's redemptions."""

    pagination_class = RedemptionsNewestFirst
    permission_classes = [StorefrontReadsAnyoneRedeems]

    @extend_schema(
        operation_id="redemptions_list", summary="Your redemptions, newest first",
        parameters=_filter_parameters(RedemptionFilters, "redemptions made"),
        responses=documented({200: RedemptionDetailOutput(many=True), **LIST_ERRORS}),
    )
    def get(self, request):
        data = _validated_filters(RedemptionFilters, request)
        rows = _own_redemptions(self.caller)
        if "order_ref" in data:
            rows = rows.filter(order_ref=data["order_ref"])
        if "customer" in data:
            rows = rows.filter(code__issuance__customer=data["customer"])
        if "status" in data:
            rows = rows.filter(reversed_at__isnull=data["status"] == "redeemed")
        if "redeemed_after" in data:
            rows = rows.filter(redeemed_at__gte=data["redeemed_after"])
        if "redeemed_before" in data:
            rows = rows.filter(redeemed_at__lt=data["redeemed_before"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(RedemptionDetailOutput(page, many=True).data)


class RedemptionDetailApi(StorefrontApiView):
    @extend_schema(
        operation_id="redemptions_retrieve", summary="One of your redemptions",
        parameters=[RETRY_AFTER],
        responses=documented({200: RedemptionDetailOutput, 401: COMMON_ERRORS[401],
                              404: problem("`not_found` (also another storefront's, and for a partner key)."),
                              429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503]}),
    )
    def get(self, request, redemption_id):
        redemption = _own_redemptions(self.caller).filter(pk=redemption_id).first()
        if redemption is None:
            raise NotFound("No such redemption.")
        return Response(RedemptionDetailOutput(redemption).data)
