"""Per-page figures: an admin that attaches figures to the rows of one page with one query."""

from __future__ import annotations

from django.contrib.admin.views.main import ChangeList

from config.admin_console import MerchantScopedAdmin


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
