"""Admin for fraud rules, allow/blocklists, decisions and events.

Scoped by merchant (tenancy, invariant 8 of docs/invariants.md): a user with a MerchantStaff row sees and
edits only their merchant's rows and can only pick their merchant and its products;
a superuser sees everything; any other staff user sees nothing. Decisions and events
are read-only: they are evidence.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from config.admin_console import MerchantScopedAdmin as ScopedAdminBase
from config.admin_console import ReadOnlyPermissions, labelled
from config.tenancy import is_unscoped, staff_merchant
from fraud import admin_lockouts
from fraud.models import AllowlistEntry, BlocklistEntry, FraudEvent, FraudRule, RiskAssessment
from fraud.services.rules import ensure_default_rules, lists_changed, rules_changed


class MerchantScopedAdmin(ScopedAdminBase):
    """The console's scoping (rows, choices, permissions) for rows with a `merchant` key.

    The merchant stays a field of the form (limited to the staff member's own merchant,
    preselected), so a forged merchant is a form error rather than silently replaced;
    the merchant list filter is for superusers only.
    """

    merchant_paths = ("merchant",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        merchant = None if is_unscoped(request) else staff_merchant(request)
        if field is not None and merchant is not None and db_field.name == "merchant":
            field.initial = merchant.pk
        return field

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if not is_unscoped(request):
            filters = [f for f in filters if f != "merchant"]
        return filters


class ReadOnlyAdmin(ReadOnlyPermissions, MerchantScopedAdmin):
    """Decisions and events are evidence: read here, never added, edited or deleted."""


class BumpsVersionAdmin(MerchantScopedAdmin):
    """Saving or deleting a row tells every process to reload the merchant's copy."""

    def changed(self, merchant_id: int) -> None:
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self.changed(obj.merchant_id)
        if change and "merchant" in form.changed_data and form.initial.get("merchant"):
            self.changed(form.initial["merchant"])

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        self.changed(obj.merchant_id)

    def delete_queryset(self, request, queryset):
        merchants = set(queryset.values_list("merchant_id", flat=True))
        super().delete_queryset(request, queryset)
        for merchant_id in merchants:
            self.changed(merchant_id)


@admin.register(FraudRule)
class FraudRuleAdmin(BumpsVersionAdmin):
    list_display = ("name", "merchant", "action", "kind", "order", "enabled", "limit", "window_seconds")
    list_editable = ("enabled", "order", "limit", "window_seconds")
    list_filter = ("enabled", "action", "kind", "merchant")
    search_fields = ("name",)
    ordering = ("merchant", "action", "order", "pk")
    fieldsets = (
        (None, {"fields": ("merchant", "name", "kind", "action", "order", "enabled")}),
        (_("Threshold"), {"fields": ("limit", "window_seconds", "count_units", "per_product", "product",
                                  "new_customer_orders")}),
        (_("Applies to"), {"fields": ("on_issue", "on_redeem", "on_check")}),
    )

    def changed(self, merchant_id: int) -> None:
        rules_changed(merchant_id=merchant_id)

    def changelist_view(self, request, extra_context=None):
        merchant = staff_merchant(request)
        if merchant is not None:  # a merchant sees its defaults before the first request
            ensure_default_rules(merchant_id=merchant.pk)
        return super().changelist_view(request, extra_context)


class ListEntryAdmin(BumpsVersionAdmin):
    list_display = ("kind", "value", "note", "expires_at", "merchant", "created_at")
    list_filter = ("kind", "merchant")
    search_fields = ("value", "note")
    fields = ("merchant", "kind", "value", "note", "expires_at")

    def changed(self, merchant_id: int) -> None:
        lists_changed(merchant_id=merchant_id)


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(ListEntryAdmin):
    pass


@admin.register(AllowlistEntry)
class AllowlistEntryAdmin(ListEntryAdmin):
    pass


def _pretty_json(value) -> str:
    """Labelled fields, never raw JSON."""
    return labelled(value)


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

    @admin.display(description=_("context"))
    def context_pretty(self, obj: FraudEvent) -> str:
        return _pretty_json(obj.context)

    def get_urls(self):
        from django.urls import path

        return [
            path("<path:object_id>/lift-lockout/", self.admin_site.admin_view(self.lift_lockout_view),
                 name="fraud_fraudevent_lift_lockout"),
            *super().get_urls(),
        ]

    def lift_lockout_view(self, request, object_id):
        return admin_lockouts.lift_lockout_view(self, request, object_id)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if (obj is not None and obj.kind == FraudEvent.Kind.LOCKOUT
                and admin_lockouts.has_lift_permission(request)
                and admin_lockouts.active_lockout_seconds(obj) > 0):
            context["lift_lockout_url"] = admin_lockouts.lift_url(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "outcome", "score", "reason_list", "customer", "ip", "merchant",
                    "issuance", "redemption")
    list_filter = ("outcome", "action", "merchant", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("customer", "ip", "email", "device_id")
    list_select_related = ("merchant", "issuance", "redemption")
    fields = ("created_at", "merchant", "action", "outcome", "score", "reason_list", "details_pretty",
              "api_key_id", "storefront", "partner", "product", "quantity", "customer", "ip", "ip_group",
              "device_id", "email", "issuance", "redemption")
    readonly_fields = fields

    @admin.display(description=_("reasons"))
    def reason_list(self, obj: RiskAssessment) -> str:
        return ", ".join(obj.reasons) if obj.reasons else "–"

    @admin.display(description=_("details"))
    def details_pretty(self, obj: RiskAssessment) -> str:
        return _pretty_json(obj.details)
