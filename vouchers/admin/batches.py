"""Batches, codes and code events (scoped by config.admin_console); loads of codes are in loads.py.

No page, list, search, filter or export shows a plaintext code, a ciphertext, a
nonce or a blind index: codes appear as "…last4" and serial only. Codes and events
are records (read-only); batches change status only through the pause / resume /
void services; canary codes are shown once, at creation.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from config.admin_confirm import SelectionConfirmView
from config.admin_console import (
    ReadOnlyPermissions,
    RecordAdmin,
    ScopedInline,
    ScopedRelatedFilter,
    TenantModelForm,
    labelled,
)
from config.errors import DomainError
from config.tenancy import has_tenant, is_unscoped
from vouchers import selectors
from vouchers.admin import loads as admin_loads
from vouchers.admin import reveal as admin_reveal
from vouchers.admin import views as admin_views
from vouchers.admin.base import AnnotatedPageAdmin
from vouchers.admin.forms import BatchStatusForm, ExtendValidityForm
from vouchers.models import Batch, Code, CodeEvent
from vouchers.services.batch_validity import extend_validity

STOCK_STATES = tuple(Code.State.values)


# --- batches --------------------------------------------------------------------------


def _stock_column(state: str):
    @admin.display(description=state)
    def column(self, obj):
        stock = getattr(obj, "stock", None)
        return None if stock is None else stock[state]

    column.__name__ = f"stock_{state}"
    return column


class BatchForm(TenantModelForm):
    class Meta:
        model = Batch
        fields = ("reference",)


@admin.register(Batch)
class BatchAdmin(AnnotatedPageAdmin):
    form = BatchForm
    # Stock first: the columns a merchant looks for fit a 1366 px screen before anything else.
    list_display = (
        "id", "product", "status", *(f"stock_{state}" for state in STOCK_STATES), "size", "valid_until",
        "merchant", "source",
    )
    list_display_links = ("id", "product")
    list_filter = ("status", "source", ("product", ScopedRelatedFilter))
    list_select_related = ("product__merchant",)
    search_fields = ("=id", "reference", "product__sku")
    fields = (
        "product", "reference", "source", "status", "valid_from", "valid_until", "case_sensitive",
        "format_fields", "size", "stock_table", "canary_codes", "created_by", "created_at",
    )
    readonly_fields = tuple(f for f in fields if f != "reference")
    actions = ("pause_selected", "resume_selected", "void_selected", "extend_validity_selected")

    stock_available = _stock_column(Code.State.AVAILABLE)
    stock_reserved = _stock_column(Code.State.RESERVED)
    stock_issued = _stock_column(Code.State.ISSUED)
    stock_redeemed = _stock_column(Code.State.REDEEMED)
    stock_void = _stock_column(Code.State.VOID)

    @admin.display(description=_("merchant"), ordering="product__merchant__name")
    def merchant(self, obj):
        return obj.product.merchant

    @admin.display(description="format")
    def format_fields(self, obj):
        return labelled(obj.format)

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if not is_unscoped(request):
            display.remove("merchant")
        return display

    def annotate_page(self, request, objects):
        stock = selectors.stock_by_state(b.pk for b in objects)  # one query for the whole page
        for batch in objects:
            batch.stock = stock[batch.pk]

    @admin.display(description=_("stock by state"))
    def stock_table(self, obj):
        stock = selectors.stock_by_state([obj.pk])[obj.pk]
        rows = format_html_join(
            "", '<tr><th class="pr-4 text-left font-normal">{}</th><td class="text-right">{}</td></tr>',
            stock.items(),
        )
        return format_html(
            '<table class="stock-by-state">{}<tr><th class="pr-4 text-left">total</th>'
            '<td class="text-right font-semibold">{}</td></tr></table>',
            rows, sum(stock.values()),
        )

    @staticmethod
    def canary_count(batch: Batch) -> int:
        """How many canaries the batch has (canaries are always void: the constraint keeps them so)."""
        return Code.objects.filter(batch_id=batch.pk, state=Code.State.VOID, is_canary=True).count()

    @admin.display(description=_("canary codes"))
    def canary_codes(self, obj):
        return format_html(
            "{} <span class=\"help\">(planted bait; any use of one raises a leak alert. "
            "Their values were shown once, when planted.)</span>",
            self.canary_count(obj),
        )

    # --- permissions: codes are loaded through generate / import, never the raw add form

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # codes, events and counters hang off a batch; void it instead

    def has_load_permission(self, request) -> bool:
        return has_tenant(request) and request.user.has_perm("vouchers.add_batch")

    def has_status_permission(self, request, obj=None) -> bool:
        return has_tenant(request) and request.user.has_perm("vouchers.change_batch")

    def has_canary_permission(self, request, obj=None) -> bool:
        """Planting canaries shows new secrets, so it takes the reveal permission."""
        return has_tenant(request) and request.user.has_perm("vouchers.reveal_code")

    # --- pages

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("generate/", wrap(self.generate_view), name="{}_{}_generate".format(*info)),
            path("import/", wrap(self.import_view), name="{}_{}_import".format(*info)),
            path("loads/<uuid:job_id>/", wrap(self.load_job_view), name="{}_{}_load_job".format(*info)),
            path(
                "loads/<uuid:job_id>/report.csv", wrap(self.load_job_report_view),
                name="{}_{}_load_job_report".format(*info),
            ),
            path(
                "<path:object_id>/status/<str:action>/", wrap(self.status_view),
                name="{}_{}_status".format(*info),
            ),
            path(
                "<path:object_id>/canaries/", wrap(self.canaries_view),
                name="{}_{}_plant_canaries".format(*info),
            ),
            *super().get_urls(),
        ]

    def generate_view(self, request):
        return admin_views.generate_codes_view(self, request)

    def import_view(self, request):
        return admin_views.import_codes_view(self, request)

    def load_job_view(self, request, job_id):
        return admin_loads.load_job_view(self, request, job_id)

    def load_job_report_view(self, request, job_id):
        return admin_loads.load_job_report_view(self, request, job_id)

    def status_view(self, request, object_id, action):
        return admin_views.batch_status_view(self, request, object_id, action)

    def canaries_view(self, request, object_id):
        return admin_views.plant_canaries_view(self, request, object_id)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_load_codes": self.has_load_permission(request)}
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        links = []
        if obj is not None and obj.pk and self.has_status_permission(request, obj):
            available = {
                Batch.Status.ACTIVE: ("pause", "void"), Batch.Status.PAUSED: ("resume", "void"),
            }.get(obj.status, ())
            links = [
                (action.capitalize(), reverse("admin:vouchers_batch_status", args=[quote(obj.pk), action]))
                for action in available
            ]
        context["status_links"] = links
        context["canary_url"] = (
            reverse("admin:vouchers_batch_plant_canaries", args=[quote(obj.pk)])
            if obj is not None and obj.pk and obj.status != Batch.Status.VOID
            and self.has_canary_permission(request, obj)
            else None
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- actions

    @admin.action(description=_("Pause selected batches"), permissions=["status"])
    def pause_selected(self, request, queryset):
        for batch in queryset.select_related("product"):
            admin_views.apply_status_change(self, request, batch=batch, action="pause")

    @admin.action(description=_("Resume selected batches"), permissions=["status"])
    def resume_selected(self, request, queryset):
        for batch in queryset.select_related("product"):
            admin_views.apply_status_change(self, request, batch=batch, action="resume")

    @admin.action(description=_("Void selected batches…"), permissions=["status"])
    def void_selected(self, request, queryset):
        """Asks for confirmation and a reason first (voiding cannot be undone)."""
        return VoidSelectedPage(self, request, list(queryset.select_related("product"))).respond()

    @admin.action(description="Extend validity of selected batches…", permissions=["status"])
    def extend_validity_selected(self, request, queryset):
        """Asks for the new end of validity and a reason; each batch records an event."""
        return ExtendValiditySelectedPage(self, request, list(queryset.select_related("product"))).respond()


class VoidSelectedPage(SelectionConfirmView):
    def make_form(self, data):
        return BatchStatusForm(data, reason_required=True)

    def apply(self, form) -> HttpResponse:
        for batch in self.rows:
            admin_views.apply_status_change(
                self.model_admin, self.request, batch=batch, action="void", reason=form.cleaned_data["reason"]
            )
        return self.back_to_the_list()

    def ask(self, form) -> HttpResponse:
        stock = selectors.stock_by_state(b.pk for b in self.rows)
        return admin_views.render_page(
            self.model_admin, self.request, "admin/vouchers/batch/void_selected_confirmation.html",
            title=_("Void batches"), form=form,
            batches=[(b, stock[b.pk]) for b in self.rows],
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )


class ExtendValiditySelectedPage(SelectionConfirmView):
    def make_form(self, data):
        return ExtendValidityForm(data)

    def apply(self, form) -> HttpResponse:
        model_admin, request = self.model_admin, self.request
        for batch in self.rows:
            try:
                previous = extend_validity(
                    batch=batch, valid_until=form.cleaned_data["valid_until"],
                    reason=form.cleaned_data["reason"], actor_user=request.user,
                )
            except DomainError as exc:
                model_admin.message_user(request, exc.detail, messages.WARNING)
            else:
                model_admin.log_change(request, batch, f"Validity extended from {previous:%Y-%m-%d %H:%M}.")
                model_admin.message_user(
                    request, f"{batch} is now valid until {batch.valid_until:%Y-%m-%d %H:%M} UTC.",
                    messages.SUCCESS,
                )
        return self.back_to_the_list()

    def ask(self, form) -> HttpResponse:
        return admin_views.render_page(
            self.model_admin, self.request, "admin/vouchers/batch/extend_validity.html",
            title="Extend the validity of batches", form=form, batches=self.rows,
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )


# --- codes and their records ----------------------------------------------------------


class CodeEventInline(ReadOnlyPermissions, ScopedInline):
    model = CodeEvent
    fk_name = "code"
    fields = ("created_at", "action", "from_state", "to_state", "actor", "issuance", "details_fields")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)

    @admin.display(description="details")
    def details_fields(self, obj):
        return labelled(obj.details)


@admin.register(Code)
class CodeAdmin(RecordAdmin):
    """Codes by id, last 4 and serial. Finding a code by the code itself is a POST (see find_code_view)."""

    list_display = (
        "id", "batch", "product", "code_tail", "serial", "state", "state_changed_at", "redeemed_at",
    )
    list_filter = ("state", ("batch", ScopedRelatedFilter), "is_canary")
    list_select_related = ("batch__product",)
    search_fields = ("=serial",)
    search_help_text = (
        "Serial number (exact). To find a code by the code itself, use “Find a code” "
        "(the code is sent privately and never kept)."
    )
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "id", "batch", "product", "code_tail", "serial", "state", "state_changed_at", "redeemed_at",
        "expires_at", "issuance", "is_canary", "key_id",
    )
    readonly_fields = fields
    inlines = (CodeEventInline,)

    @admin.display(description=_("code"), ordering="last4")
    def code_tail(self, obj):
        return f"…{obj.last4}"

    @admin.display(description=_("product"), ordering="batch__product__sku")
    def product(self, obj):
        return obj.batch.product

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            # Error reports (DEBUG pages, mailed tracebacks) show the typed code as stars.
            path(
                "find/", self.admin_site.admin_view(sensitive_post_parameters("code")(self.find_view)),
                name="{}_{}_find".format(*info),
            ),
            path(
                "<path:object_id>/reveal/", self.admin_site.admin_view(self.reveal_view),
                name="{}_{}_reveal".format(*info),
            ),
            *super().get_urls(),
        ]

    def find_view(self, request):
        return admin_views.find_code_view(self, request)

    def reveal_view(self, request, object_id):
        return admin_reveal.reveal_code_view(self, request, object_id)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk and admin_reveal.has_reveal_permission(request):
            context["reveal_url"] = reverse("admin:vouchers_code_reveal", args=[quote(obj.pk)])
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(CodeEvent)
class CodeEventAdmin(RecordAdmin):
    list_display = (
        "id", "created_at", "action", "from_state", "to_state", "actor", "batch", "code", "issuance",
    )
    list_filter = ("action", "to_state")
    list_select_related = ("batch__product", "code", "issuance")
    search_fields = ("=batch__id", "=code__id", "actor")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "id", "created_at", "action", "from_state", "to_state", "actor", "batch", "code", "issuance",
        "details_fields",
    )
    readonly_fields = fields

    @admin.display(description="details")
    def details_fields(self, obj):
        return labelled(obj.details)
