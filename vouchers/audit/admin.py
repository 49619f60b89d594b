"""The audit log in the admin: read-only, each merchant's staff see their own merchant's entries.

Entries are evidence: nobody adds, changes or deletes them here (the model and the
database refuse it anyway). The operators' global chain (no merchant) is shown to
superusers only. Viewing needs the "Can view audit entry" permission.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from config.admin_console import MerchantScopedAdmin, ReadOnlyPermissions
from config.tenancy import is_unscoped
from vouchers.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyPermissions, MerchantScopedAdmin):
    merchant_paths = ("merchant",)
    list_display = ("created_at", "action", "actor_display", "target_label", "reason", "merchant", "seq")
    list_filter = ("action", "merchant")
    list_select_related = ("merchant",)
    search_fields = ("actor_name", "target_label", "=target_id", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "created_at", "action", "actor_display", "target_type", "target_id", "target_label", "reason",
        "details_display", "merchant", "chain", "seq", "prev_hash", "hash",
    )
    readonly_fields = fields

    @admin.display(description=_("who"), ordering="actor_name")
    def actor_display(self, obj: AuditEntry) -> str:
        return obj.actor_name or obj.actor

    @admin.display(description=_("details"))
    def details_display(self, obj: AuditEntry) -> str:
        return "; ".join(f"{name}: {value}" for name, value in sorted(obj.details.items())) or "-"

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if not is_unscoped(request):
            display.remove("merchant")
        return display

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        return filters if is_unscoped(request) else [f for f in filters if f != "merchant"]
