"""Merchants and their staff, storefronts and their API keys, products (scoped by config.admin_console).

API keys are shown once, at creation; they are revoked through the API-key service.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import Count, Q
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import APIKey

from config.admin_console import (
    MerchantScopedAdmin,
    ReadOnlyPermissions,
    ScopedInline,
    ScopedRelatedFilter,
    TenantModelForm,
    superuser_only,
)
from config.errors import DomainError
from config.tenancy import has_tenant
from vouchers import selectors
from vouchers.admin import keys as admin_keys
from vouchers.admin import views as admin_views
from vouchers.admin.base import AnnotatedPageAdmin
from vouchers.dashboard.admin import MerchantAlertSettingInline, ProductAlertSettingInline
from vouchers.models import Merchant, MerchantStaff, Product, Storefront, StorefrontAPIKey
from vouchers.services.api_keys import revoke_storefront_key, storefront_keys_changed

# djangorestframework-api-key registers its generic APIKey model, which no caller of this
# service uses, and its admin puts a new key's plaintext into a message (a cookie or the
# session table). Storefront keys are created through StorefrontAdmin instead.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


# --- merchants and staff --------------------------------------------------------------


@admin.register(Merchant)
class MerchantAdmin(MerchantScopedAdmin):
    list_display = ("name", "slug", "reversal_window_days", "created_at")
    inlines = (MerchantAlertSettingInline,)
    search_fields = ("name", "slug")

    def get_readonly_fields(self, request, obj=None):
        return () if superuser_only(request) else ("slug",)

    def has_add_permission(self, request):
        return superuser_only(request)

    def has_delete_permission(self, request, obj=None):
        return superuser_only(request)


@admin.register(MerchantStaff)
class MerchantStaffAdmin(MerchantScopedAdmin):
    """Staff see who works for their merchant; granting access is a superuser's job."""

    list_display = ("user", "merchant")
    list_select_related = ("user", "merchant")
    raw_id_fields = ("user",)
    search_fields = ("user__username", "user__email")

    def has_add_permission(self, request):
        return superuser_only(request)

    def has_change_permission(self, request, obj=None):
        return superuser_only(request)

    def has_delete_permission(self, request, obj=None):
        return superuser_only(request)


# --- storefronts and their API keys ---------------------------------------------------


class StorefrontForm(TenantModelForm):
    class Meta:
        model = Storefront
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        merchant = cleaned.get("merchant") or getattr(self.instance, "merchant", None)
        products = cleaned.get("products")
        if merchant is not None and products is not None:
            foreign = [p.sku for p in products if p.merchant_id != merchant.pk]
            if foreign:
                self.add_error("products", _("Not products of %(p0)s: %(p1)s.") % {
                    "p0": merchant, "p1": ', '.join(foreign)})
        return cleaned


class StorefrontAPIKeyInline(ReadOnlyPermissions, ScopedInline):
    model = StorefrontAPIKey
    fields = ("prefix", "name", "created", "last_used_at", "expiry_date", "revoked")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "API keys (the key itself is shown only once, when created)"


@admin.register(Storefront)
class StorefrontAdmin(MerchantScopedAdmin):
    form = StorefrontForm
    merchant_field = "merchant"
    list_display = ("name", "merchant", "is_active", "reservation_ttl_seconds", "active_keys", "created_at")
    list_filter = ("is_active", "merchant")
    list_select_related = ("merchant",)
    search_fields = ("name",)
    fields = ("merchant", "name", "is_active", "reservation_ttl_seconds", "products")
    filter_horizontal = ("products",)
    inlines = (StorefrontAPIKeyInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            active_key_count=Count("api_keys", filter=Q(api_keys__revoked=False))
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        storefront_keys_changed(merchant_id=obj.merchant_id)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        storefront_keys_changed(merchant_id=obj.merchant_id)

    @admin.display(description=_("active API keys"), ordering="active_key_count")
    def active_keys(self, obj):
        return obj.active_key_count

    def has_key_permission(self, request, obj=None) -> bool:
        """Creating a key: change the storefront and add keys."""
        return (
            has_tenant(request)
            and self.has_change_permission(request, obj)
            and request.user.has_perm("vouchers.add_storefrontapikey")
        )

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/api-keys/new/",
                self.admin_site.admin_view(self.create_api_key_view),
                name="{}_{}_create_api_key".format(*info),
            ),
            *super().get_urls(),
        ]

    def create_api_key_view(self, request, object_id):
        return admin_views.create_api_key_view(self, request, object_id)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk and self.has_key_permission(request, obj):
            context["create_key_url"] = reverse(
                "admin:vouchers_storefront_create_api_key", args=[quote(obj.pk)]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(StorefrontAPIKey)
class StorefrontAPIKeyAdmin(MerchantScopedAdmin):
    """Keys are listed by prefix; created from the storefront's page, revoked here."""

    list_display = ("prefix", "name", "storefront", "created", "last_used_at", "expiry_date", "revoked")
    list_filter = ("revoked", ("storefront", ScopedRelatedFilter))
    list_select_related = ("storefront__merchant",)
    search_fields = ("name", "=prefix")
    fields = ("prefix", "name", "storefront", "created", "last_used_at", "expiry_date", "revoked")
    readonly_fields = fields
    actions = ("revoke_selected",)

    def has_add_permission(self, request):
        return False  # only through the storefront's "Create API key", which shows the key once

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a revoked key stays on record

    def has_revoke_permission(self, request) -> bool:
        return has_tenant(request) and request.user.has_perm("vouchers.change_storefrontapikey")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view),
                name="vouchers_storefrontapikey_revoke",
            ),
            *super().get_urls(),
        ]

    def revoke_view(self, request, object_id):
        return admin_keys.revoke_key_view(self, request, object_id)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not obj.revoked and self.has_revoke_permission(request):
            context["revoke_url"] = reverse("admin:vouchers_storefrontapikey_revoke", args=[quote(obj.pk)])
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=_("Revoke selected API keys"), permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for api_key in queryset:
            try:
                revoke_storefront_key(api_key=api_key, revoked_by=request.user)
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
            else:
                revoked += 1
                self.log_change(request, api_key, "Revoked.")
        if revoked:
            self.message_user(request, _("Revoked %(p0)s API key(s).") % {"p0": revoked}, messages.SUCCESS)


# --- products -------------------------------------------------------------------------


@admin.register(Product)
class ProductAdmin(AnnotatedPageAdmin):
    merchant_field = "merchant"
    inlines = (ProductAlertSettingInline,)
    list_display = (
        "sku", "name", "merchant", "face_value", "currency", "partner", "is_active", "available",
    )
    list_filter = ("is_active", "currency", "merchant", "partner")
    list_select_related = ("merchant", "partner")
    search_fields = ("sku", "name")
    fields = ("merchant", "sku", "name", "face_value", "currency", "partner", "is_active")

    def annotate_page(self, request, objects):
        available = selectors.available_by_product(p.pk for p in objects)
        for product in objects:
            product.available_now = available[product.pk]

    @admin.display(description=_("in stock (sellable now)"))
    def available(self, obj):
        return getattr(obj, "available_now", None)
