"""The voucher admin, scoped per merchant (see admin_tenancy.py).

No page, list, search, filter or export shows a plaintext code, a ciphertext, a
nonce or a blind index: codes appear as "…last4" and serial only. Codes, events,
issuances and redemptions are records (read-only); batches change status only
through the pause / resume / void services; issuances held for fraud review are
approved or denied through the review services; API keys and canary codes are
shown once, at creation.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, Q
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework_api_key.models import APIKey

from fraud.models import RiskAssessment
from vouchers import (  # noqa: F401 (admin_auth registers users and groups)
    admin_auth,
    admin_keys,
    admin_loads,
    admin_reveal,
    admin_views,
    selectors,
)
from vouchers.admin_forms import BatchStatusForm, ExtendValidityForm, ReviewDecisionForm
from vouchers.admin_tenancy import (
    MerchantScopedAdmin,
    ScopedInline,
    ScopedRelatedFilter,
    TenantModelForm,
    has_tenant,
    is_unscoped,
)
from vouchers.admin_theme import labelled
from vouchers.dashboard.admin import MerchantAlertSettingInline, ProductAlertSettingInline
from vouchers.exceptions import DomainError
from vouchers.models import (
    Batch,
    Code,
    CodeEvent,
    Issuance,
    Merchant,
    MerchantStaff,
    Product,
    Redemption,
    Storefront,
    StorefrontAPIKey,
)
from vouchers.services.api_keys import revoke_storefront_key, storefront_keys_changed
from vouchers.services.batch_validity import extend_validity

# djangorestframework-api-key registers its generic APIKey model, which no caller of this
# service uses, and its admin puts a new key's plaintext into a message (a cookie or the
# session table). Storefront keys are created through StorefrontAdmin instead.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)

STOCK_STATES = tuple(Code.State.values)


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


class RecordAdmin(MerchantScopedAdmin):
    """Records are written by services only: here they are read, never added, edited or deleted."""

    actions: Sequence[str] | None = None

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def superuser_only(request) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


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


class StorefrontAPIKeyInline(ScopedInline):
    model = StorefrontAPIKey
    fields = ("prefix", "name", "created", "last_used_at", "expiry_date", "revoked")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "API keys (the key itself is shown only once, when created)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
        batches = list(queryset.select_related("product"))
        confirmed = "confirm" in request.POST
        form = BatchStatusForm(request.POST if confirmed else None, reason_required=True)
        if confirmed and form.is_valid():
            for batch in batches:
                admin_views.apply_status_change(
                    self, request, batch=batch, action="void", reason=form.cleaned_data["reason"]
                )
            return None
        stock = selectors.stock_by_state(b.pk for b in batches)
        return admin_views.render_page(
            self, request, "admin/vouchers/batch/void_selected_confirmation.html",
            title=_("Void batches"), form=form,
            batches=[(b, stock[b.pk]) for b in batches],
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )


    @admin.action(description="Extend validity of selected batches…", permissions=["status"])
    def extend_validity_selected(self, request, queryset):
        """Asks for the new end of validity and a reason; each batch records an event."""
        batches = list(queryset.select_related("product"))
        confirmed = "confirm" in request.POST
        form = ExtendValidityForm(request.POST if confirmed else None)
        if confirmed and form.is_valid():
            for batch in batches:
                try:
                    previous = extend_validity(
                        batch=batch, valid_until=form.cleaned_data["valid_until"],
                        reason=form.cleaned_data["reason"], actor_user=request.user,
                    )
                except DomainError as exc:
                    self.message_user(request, exc.detail, messages.WARNING)
                else:
                    self.log_change(request, batch, f"Validity extended from {previous:%Y-%m-%d %H:%M}.")
                    self.message_user(
                        request, f"{batch} is now valid until {batch.valid_until:%Y-%m-%d %H:%M} UTC.",
                        messages.SUCCESS,
                    )
            return None
        return admin_views.render_page(
            self, request, "admin/vouchers/batch/extend_validity.html",
            title="Extend the validity of batches", form=form, batches=batches,
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )


# --- codes and their records ----------------------------------------------------------


class CodeEventInline(ScopedInline):
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

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


class IssuedCodeInline(ScopedInline):
    model = Code
    fields = ("id", "code_tail", "serial", "state", "redeemed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description=_("code"))
    def code_tail(self, obj):
        return f"…{obj.last4}"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def fraud_decisions(issuance_ids) -> dict:
    """{issuance id: its latest issue decision (outcome, score, reasons)}, in one query."""
    rows = (
        RiskAssessment.objects.filter(issuance_id__in=list(issuance_ids), action="issue")
        .order_by("issuance_id", "created_at", "pk")
        .values("issuance_id", "outcome", "score", "reasons")
    )
    return {row["issuance_id"]: row for row in rows}  # the latest one per issuance wins


REVIEWER_HELP = (
    "Issuances held for fraud review keep their codes reserved until a reviewer approves them "
    "(the storefront then gets the codes from the API) or denies them (the codes go back to stock), "
    "or until the review deadline, when they go back to stock by themselves. Approving and denying "
    "need the “Can change issuance” permission; an issuance's fields are "
    "never edited here. Codes are shown by their last 4 characters only."
)


@admin.register(Issuance)
class IssuanceAdmin(AnnotatedPageAdmin, RecordAdmin):
    """Issuances are records; those held for fraud review are approved or denied here.

    The reviewer permission is the model's `vouchers.change_issuance` (see REVIEWER_HELP).
    """

    list_display: tuple[str, ...] = (
        "id", "storefront", "product", "quantity", "status", "customer", "order_ref", "fraud_score",
        "fraud_reasons", "created_at",
    )
    list_filter: tuple[str | tuple[str, type], ...] = ("status", ("storefront", ScopedRelatedFilter))
    list_select_related = ("storefront__merchant", "product")
    search_fields = ("=order_ref", "=customer")
    fields = (
        "id", "storefront", "product", "quantity", "status", "customer", "order_ref", "reserved_until",
        "fraud_decision", "context_fields", "created_at", "updated_at",
    )
    readonly_fields = fields
    inlines = (IssuedCodeInline,)
    actions = ("approve_selected", "deny_selected")

    # --- the fraud decision, one query for a page

    fraud_decisions = staticmethod(fraud_decisions)

    def annotate_page(self, request, objects):
        decisions = fraud_decisions(obj.pk for obj in objects)
        for issuance in objects:
            issuance.decision = decisions.get(issuance.pk)

    @admin.display(description=_("fraud score"))
    def fraud_score(self, obj):
        decision = getattr(obj, "decision", None)
        return None if decision is None else decision["score"]

    @admin.display(description=_("fraud reasons"))
    def fraud_reasons(self, obj):
        decision = getattr(obj, "decision", None)
        return ", ".join(decision["reasons"]) if decision and decision["reasons"] else "-"

    @admin.display(description=_("customer context"))
    def context_fields(self, obj):
        return labelled(obj.context)

    @admin.display(description=_("fraud decision"))
    def fraud_decision(self, obj):
        decision = fraud_decisions([obj.pk]).get(obj.pk)
        if decision is None:
            return "-"
        return format_html(
            "{} (score {}): {}", decision["outcome"], decision["score"],
            ", ".join(decision["reasons"]) or "no rule matched",
        )

    # --- reviews

    def has_review_permission(self, request, obj=None) -> bool:
        return has_tenant(request) and request.user.has_perm("vouchers.change_issuance")

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        queue = ReviewQueueAdmin(self.model, self.admin_site)
        return [
            path("review/", wrap(queue.changelist_view), name="{}_{}_review_queue".format(*info)),
            path(
                "<path:object_id>/review/<str:decision>/", wrap(self.review_view),
                name="{}_{}_review".format(*info),
            ),
            *super().get_urls(),
        ]

    def review_view(self, request, object_id, decision):
        return admin_views.review_decision_view(self, request, object_id, decision)

    def changelist_view(self, request, extra_context=None):
        queue = self.get_queryset(request).filter(status=Issuance.Status.REVIEW)
        extra_context = {
            "review_queue_url": reverse("admin:vouchers_issuance_review_queue"),
            "review_count": queue.count(),
            "reviewer_help": REVIEWER_HELP,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        links = []
        held = obj is not None and obj.status == Issuance.Status.REVIEW
        if held and self.has_review_permission(request, obj):
            links = [
                (label, reverse("admin:vouchers_issuance_review", args=[quote(obj.pk), decision]))
                for decision, label in admin_views.REVIEW_DECISIONS.items()
            ]
        context["review_links"] = links
        context["reviewer_help"] = REVIEWER_HELP
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=_("Approve selected issuances (held for review)"), permissions=["review"])
    def approve_selected(self, request, queryset):
        for issuance in queryset:
            admin_views.apply_review_decision(self, request, issuance=issuance, decision="approve")

    @admin.action(description=_("Deny selected issuances (held for review)…"), permissions=["review"])
    def deny_selected(self, request, queryset):
        """Asks for confirmation and a reason first (a denied order cannot be approved later)."""
        issuances = list(queryset.select_related("product", "storefront"))
        confirmed = "confirm" in request.POST
        form = ReviewDecisionForm(request.POST if confirmed else None, reason_required=True)
        if confirmed and form.is_valid():
            for issuance in issuances:
                admin_views.apply_review_decision(
                    self, request, issuance=issuance, decision="deny", reason=form.cleaned_data["reason"]
                )
            return None
        return admin_views.render_page(
            self, request, "admin/vouchers/issuance/deny_selected_confirmation.html",
            title=_("Deny issuances held for review"), form=form, issuances=issuances,
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )


class ReviewQueueAdmin(IssuanceAdmin):
    """The review queue: issuances held for fraud review, oldest first, with their fraud decision.

    Served at issuance/review/ by IssuanceAdmin (not registered itself); rows open the
    issuance's own page, where Approve and Deny are.
    """

    list_display = (
        "id", "created_at", "product", "quantity", "customer", "storefront", "review_deadline",
        "fraud_score", "fraud_reasons",
    )
    list_filter = (("storefront", ScopedRelatedFilter), ("product", ScopedRelatedFilter))
    ordering = ("created_at", "pk")

    @admin.display(description=_("review deadline"), ordering="reserved_until")
    def review_deadline(self, obj):
        return obj.reserved_until

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Issuance.Status.REVIEW)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Review queue: issuances held for fraud review, oldest first",
            "is_review_queue": True,
            "issuance_list_url": reverse("admin:vouchers_issuance_changelist"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)


@admin.register(Redemption)
class RedemptionAdmin(RecordAdmin):
    list_display = ("id", "code", "storefront", "partner", "order_ref", "redeemed_at", "reversed_at")
    list_filter = (("storefront", ScopedRelatedFilter),)
    list_select_related = ("code", "storefront__merchant", "partner")
    search_fields = ("=order_ref",)
    fields = (
        "id", "code", "storefront", "partner", "order_ref", "location", "redeemed_at", "reversed_at",
        "reversal_reason",
    )
    readonly_fields = fields
