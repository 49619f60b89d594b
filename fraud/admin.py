"""Admin for fraud rules, allow/blocklists, decisions and events.

Scoped by merchant (DESIGN.md invariant 8): a user with a MerchantStaff row sees and
edits only their merchant's rows and can only pick their merchant and its products;
a superuser sees everything; any other staff user sees nothing. Decisions and events
are read-only: they are evidence.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from fraud.models import AllowlistEntry, BlocklistEntry, FraudEvent, FraudRule, RiskAssessment
from fraud.services.rules import ensure_default_rules


def staff_merchant_id(request: HttpRequest) -> int | None:
    """The merchant of the logged-in staff member (cached on the request), or None."""
    if not hasattr(request, "_fraud_merchant_id"):
        from vouchers.models import MerchantStaff

        user = request.user
        merchant_id = None
        if user.is_authenticated and user.is_active and user.is_staff:
            merchant_id = (
                MerchantStaff.objects.filter(user_id=user.pk).values_list("merchant_id", flat=True).first()
            )
        request._fraud_merchant_id = merchant_id
    return request._fraud_merchant_id


def is_unscoped(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class MerchantScopedAdmin(admin.ModelAdmin):
    """Rows, choices and filters limited to the staff member's merchant."""

    def _allowed(self, request: HttpRequest) -> bool:
        return is_unscoped(request) or staff_merchant_id(request) is not None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_unscoped(request):
            return queryset
        merchant_id = staff_merchant_id(request)
        if merchant_id is None:
            return queryset.none()
        return queryset.filter(merchant_id=merchant_id)

    def has_module_permission(self, request):
        return self._allowed(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return self._allowed(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request) and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not is_unscoped(request):
            merchant_id = staff_merchant_id(request)
            related = db_field.related_model
            if related._meta.label == "vouchers.Merchant":
                kwargs["queryset"] = related.objects.filter(pk=merchant_id)
                kwargs["initial"] = merchant_id
            elif related._meta.label == "vouchers.Product":
                kwargs["queryset"] = related.objects.filter(merchant_id=merchant_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if not is_unscoped(request):
            filters = [f for f in filters if f != "merchant"]
        return filters


class ReadOnlyAdmin(MerchantScopedAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(FraudRule)
class FraudRuleAdmin(MerchantScopedAdmin):
    list_display = ("name", "merchant", "action", "kind", "order", "enabled", "limit", "window_seconds")
    list_editable = ("enabled", "order", "limit", "window_seconds")
    list_filter = ("enabled", "action", "kind", "merchant")
    search_fields = ("name",)
    ordering = ("merchant", "action", "order", "pk")
    fieldsets = (
        (None, {"fields": ("merchant", "name", "kind", "action", "order", "enabled")}),
        ("Threshold", {"fields": ("limit", "window_seconds", "count_units", "per_product", "product",
                                  "new_customer_orders")}),
        ("Applies to", {"fields": ("on_issue", "on_redeem", "on_check")}),
    )

    def changelist_view(self, request, extra_context=None):
        merchant_id = staff_merchant_id(request)
        if merchant_id is not None:  # a merchant sees its defaults before the first request
            ensure_default_rules(merchant_id=merchant_id)
        return super().changelist_view(request, extra_context)


class ListEntryAdmin(MerchantScopedAdmin):
    list_display = ("kind", "value", "note", "expires_at", "merchant", "created_at")
    list_filter = ("kind", "merchant")
    search_fields = ("value", "note")
    fields = ("merchant", "kind", "value", "note", "expires_at")


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(ListEntryAdmin):
    pass


@admin.register(AllowlistEntry)
class AllowlistEntryAdmin(ListEntryAdmin):
    pass


def _pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(FraudEvent)
class FraudEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "severity", "kind", "decision", "merchant", "batch", "alert", "alerted_at")
    list_filter = ("severity", "kind", "decision", "alert", "merchant", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("context__customer", "context__ip", "context__email", "context__device_id")
    list_select_related = ("merchant",)
    fields = ("created_at", "merchant", "severity", "kind", "decision", "batch", "assessment",
              "context_pretty", "alert", "alerted_at")
    readonly_fields = fields

    @admin.display(description="context")
    def context_pretty(self, obj: FraudEvent) -> str:
        return _pretty_json(obj.context)


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "outcome", "score", "reasons", "customer", "ip", "merchant",
                    "issuance", "redemption")
    list_filter = ("outcome", "action", "merchant", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("customer", "ip", "email", "device_id")
    list_select_related = ("merchant", "issuance", "redemption")
    fields = ("created_at", "merchant", "action", "outcome", "score", "reasons", "details_pretty",
              "api_key_id", "storefront", "partner", "product", "quantity", "customer", "ip", "ip_group",
              "device_id", "email", "issuance", "redemption")
    readonly_fields = fields

    @admin.display(description="details")
    def details_pretty(self, obj: RiskAssessment) -> str:
        return _pretty_json(obj.details)
