"""The bases the model admins share: per-page figures, read-only records, superuser-only fields."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.admin.views.main import ChangeList

from vouchers.admin.tenancy import MerchantScopedAdmin


class PageAnnotatingChangeList(ChangeList):
    """Lets the admin attach figures to the rows of one page with one query for the page."""

    def get_results(self, request):
        super().get_results(request)
        self.model_admin.annotate_page(request, list(self.result_list))


class AnnotatedPageAdmin(MerchantScopedAdmin):
    def get_changelist(self, request, **kwargs):
        return PageAnnotatingChangeList

    def annotate_page(self, request, objects: list) -> None:
        """Attach per-row figures to `objects` (the rows of the page shown)."""


class ReadOnlyPermissions:
    """Nothing is added, changed or deleted through this admin or inline: it is for reading.

    Put it first among the bases, so that it answers before the model admin's own checks.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RecordAdmin(ReadOnlyPermissions, MerchantScopedAdmin):
    """Records are written by services only: here they are read, never added, edited or deleted."""

    actions: Sequence[str] | None = None


def superuser_only(request) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)
