"""Alert settings (inlines on products and merchants) and the alerts raised, read-only."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import StackedInline

from config.admin_console import MerchantScopedAdmin, ReadOnlyPermissions
from config.tenancy import scope_queryset
from vouchers.dashboard.models import MerchantAlertSetting, ProductAlertSetting, StockAlert


class ScopedStackedInline(StackedInline):
    extra = 1
    max_num = 1
    can_delete = False

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request, paths=self.merchant_paths)


class ProductAlertSettingInline(ScopedStackedInline):
    model = ProductAlertSetting
    merchant_paths = ("product__merchant",)
    fields = ("low_stock_threshold",)


class MerchantAlertSettingInline(ScopedStackedInline):
    model = MerchantAlertSetting
    merchant_paths = ("merchant",)
    fields = ("expiring_horizon_days",)


@admin.register(StockAlert)
class StockAlertAdmin(ReadOnlyPermissions, MerchantScopedAdmin):
    merchant_paths = ("merchant",)
    list_display = (
        "raised_at", "kind", "product", "batch", "level", "threshold", "notified_at", "cleared_at",
    )
    list_filter = ("kind",)
    list_select_related = ("product", "batch__product")
    fields = list_display
    readonly_fields = list_display
    actions = None
