"""Storefront API views: validate input, call one service, serialise output."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from config.errors import NotFound
from vouchers import selectors
from vouchers.api import schema  # noqa: F401  (registers the API-key scheme)
from vouchers.api.base import IdempotentApiView, IsStorefrontOrPartner, StorefrontApiView
from vouchers.api.serializers import (
    CodeCheckInput,
    CodeStatusOutput,
    IssuanceInput,
    IssuanceOutput,
    ProductOutput,
    RedemptionInput,
    RedemptionOutput,
    ReversalInput,
    ReversalOutput,
)
from vouchers.api.toolkit import (
    COMMON_ERRORS,
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_KEY,
    RETRY_AFTER,
    documented,
    problem,
    replayed,
)
from vouchers.models import Issuance
from vouchers.services.code_check import check_code
from vouchers.services.issuance import issue_codes
from vouchers.services.redemption import redeem_code, reverse_redemption
from vouchers.services.reservations import cancel_issuance, confirm_reservation


class ProductsPagination(PageNumberPagination):
    page_size = 100
    max_page_size = 500
    page_size_query_param = "page_size"


class ProductListApi(StorefrontApiView):
    pagination_class = ProductsPagination  # only documents the page envelope (get() pages itself)

    @extend_schema(
        operation_id="products_list", summary="Products this storefront may sell, with live stock",
        parameters=[
            RETRY_AFTER,
            OpenApiParameter("page", int, OpenApiParameter.QUERY, description="Page number, from 1."),
            OpenApiParameter("page_size", int, OpenApiParameter.QUERY,
                             description=f"Products per page (default {ProductsPagination.page_size}, "
                             f"at most {ProductsPagination.max_page_size})."),
        ],
        responses=documented({
            200: ProductOutput(many=True), 401: COMMON_ERRORS[401],
            404: problem("`not_found`: no such page."), 429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503],
        }),
    )
    def get(self, request):
        paginator = ProductsPagination()
        page = paginator.paginate_queryset(
            selectors.sellable_products(
                merchant_id=self.caller.own_merchant_id, storefront_id=self.caller.own_storefront_id
            ),
            request, view=self,
        )
        assert page is not None  # ProductsPagination always pages
        available = selectors.available_by_product([p.pk for p in page])
        rows = [
            {"sku": p.sku, "name": p.name, "face_value": p.face_value, "currency": p.currency,
             "available": max(available[p.pk], 0)}
            for p in page
        ]
        return paginator.get_paginated_response(ProductOutput(rows, many=True).data)


class IssuanceCreateApi(IdempotentApiView):
    @extend_schema(
        operation_id="issuances_create", summary="Issue (sell) or reserve codes: N or none",
        parameters=[IDEMPOTENCY_KEY, replayed(201), RETRY_AFTER], request=IssuanceInput,
        responses=documented({
            201: OpenApiResponse(IssuanceOutput, description="Issued, reserved or held for review."),
            **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            403: problem("`fraud_denied` (with `reasons`)."),
            404: problem("`unknown_product`."),
            409: problem("`out_of_stock` (with `available`) or `idempotency_in_progress`."),
        }),
    )
    def post(self, request):
        return super().post(request)

    def perform(self, request):
        data = self.validated(IssuanceInput)
        issuance = issue_codes(
            caller=self.caller, sku=data["sku"], quantity=data["quantity"],
            customer=data["customer"], order_ref=data["order_ref"], reserve=data["reserve"],
            context=self.customer_context(data),
        )
        return Response(IssuanceOutput(issuance).data, status=201)


class IssuanceDetailApi(StorefrontApiView):
    @extend_schema(
        operation_id="issuances_retrieve", summary="An issuance; codes only when issued",
        parameters=[RETRY_AFTER],
        responses=documented({200: IssuanceOutput, 401: COMMON_ERRORS[401], 404: problem("`not_found`."),
                              429: COMMON_ERRORS[429], 503: COMMON_ERRORS[503]}),
    )
    def get(self, request, issuance_id):
        issuance = (
            Issuance.objects.select_related("product")
            .filter(pk=issuance_id, storefront_id=self.caller.own_storefront_id).first()
        )
        if issuance is None:
            raise NotFound(_("No such issuance."))
        return Response(IssuanceOutput(issuance).data)


class IssuanceConfirmApi(IdempotentApiView):
    @extend_schema(
        operation_id="issuances_confirm", summary="Confirm a reservation: the codes are issued",
        parameters=[IDEMPOTENCY_KEY, replayed(200), RETRY_AFTER], request=None,
        responses=documented({
            200: OpenApiResponse(IssuanceOutput), **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            404: problem("`not_found`."),
            409: problem("`reservation_expired`, `invalid_state` or `idempotency_in_progress`."),
        }),
    )
    def post(self, request, issuance_id):
        return super().post(request, issuance_id)

    def perform(self, request, issuance_id):
        issuance = confirm_reservation(caller=self.caller, issuance_id=issuance_id)
        return Response(IssuanceOutput(issuance).data, status=200)


class IssuanceCancelApi(IdempotentApiView):
    @extend_schema(
        operation_id="issuances_cancel", summary="Cancel a reservation: codes return to stock",
        parameters=[IDEMPOTENCY_KEY, replayed(200), RETRY_AFTER], request=None,
        responses=documented({
            200: OpenApiResponse(IssuanceOutput), **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            404: problem("`not_found`."),
            409: problem("`invalid_state` (already issued) or `idempotency_in_progress`."),
        }),
    )
    def post(self, request, issuance_id):
        return super().post(request, issuance_id)

    def perform(self, request, issuance_id):
        issuance = cancel_issuance(caller=self.caller, issuance_id=issuance_id)
        return Response(IssuanceOutput(issuance).data, status=200)


class CodeCheckApi(StorefrontApiView):
    lockout_action = "check"
    permission_classes = [IsStorefrontOrPartner]  # settlement: partner keys too

    @extend_schema(
        operation_id="codes_check", summary="A code's status; changes nothing",
        parameters=[RETRY_AFTER],
        request=CodeCheckInput,
        responses=documented({
            200: CodeStatusOutput, **COMMON_ERRORS,
            404: problem("`unknown_code`: unknown, not issued, or not yours. Counts as a failed attempt."),
            429: problem("`rate_limited`, `too_many_attempts` or `risk_unavailable`.", retry_after=True),
        }),
    )
    def post(self, request):
        data = self.validated(CodeCheckInput)
        status = check_code(caller=self.caller, code=data["code"], context=self.customer_context(data))
        return Response(CodeStatusOutput(status).data)


class RedemptionCreateApi(IdempotentApiView):
    lockout_action = "redeem"
    permission_classes = [IsStorefrontOrPartner]  # settlement: partner keys too

    @extend_schema(
        operation_id="redemptions_create", summary="Redeem an issued code, exactly once",
        parameters=[IDEMPOTENCY_KEY, replayed(201), RETRY_AFTER], request=RedemptionInput,
        responses=documented({
            201: OpenApiResponse(RedemptionOutput), **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            404: problem("`unknown_code` (also a code never issued)."),
            409: problem(
                "`already_redeemed` (with `redeemed_at`), `code_void` or `idempotency_in_progress`."
            ),
            410: problem("`code_expired`."),
            429: problem("`rate_limited`, `too_many_attempts` or `risk_unavailable`.", retry_after=True),
        }),
    )
    def post(self, request):
        return super().post(request)

    def perform(self, request):
        data = self.validated(RedemptionInput)
        redemption = redeem_code(
            caller=self.caller, code=data["code"], order_ref=data["order_ref"],
            location=data["location"], context=self.customer_context(data),
        )
        return Response(RedemptionOutput(redemption).data, status=201)


class RedemptionReversalApi(IdempotentApiView):
    permission_classes = [IsStorefrontOrPartner]  # settlement: partner keys too

    @extend_schema(
        operation_id="redemptions_reverse", summary="Reverse a redemption; the code is redeemable again",
        parameters=[IDEMPOTENCY_KEY, replayed(200), RETRY_AFTER], request=ReversalInput,
        responses=documented({
            200: OpenApiResponse(ReversalOutput), **COMMON_ERRORS, **IDEMPOTENCY_ERRORS,
            404: problem("`not_found`."),
            409: problem("`already_reversed`, `reversal_window_closed` or `idempotency_in_progress`."),
        }),
    )
    def post(self, request, redemption_id):
        return super().post(request, redemption_id)

    def perform(self, request, redemption_id):
        data = self.validated(ReversalInput)
        redemption = reverse_redemption(
            caller=self.caller, redemption_id=redemption_id, reason=data["reason"]
        )
        return Response(ReversalOutput(redemption).data, status=200)
