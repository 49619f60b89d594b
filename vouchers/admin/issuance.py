"""Issuances, the fraud review queue and redemptions (scoped by config.admin_console).

Issuances and redemptions are records (read-only); issuances held for fraud review
are approved or denied through the review services.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin_confirm import SelectionConfirmView
from config.admin_console import ReadOnlyPermissions, RecordAdmin, ScopedInline, ScopedRelatedFilter, labelled
from config.tenancy import has_tenant
from fraud.models import RiskAssessment
from vouchers.admin import views as admin_views
from vouchers.admin.base import AnnotatedPageAdmin
from vouchers.admin.forms import ReviewDecisionForm
from vouchers.models import Code, Issuance, Redemption


class IssuedCodeInline(ReadOnlyPermissions, ScopedInline):
    model = Code
    fields = ("id", "code_tail", "serial", "state", "redeemed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description=_("code"))
    def code_tail(self, obj):
        return f"…{obj.last4}"


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
        return DenySelectedPage(self, request, issuances).respond()


class DenySelectedPage(SelectionConfirmView):
    def make_form(self, data):
        return ReviewDecisionForm(data, reason_required=True)

    def apply(self, form) -> HttpResponse:
        for issuance in self.rows:
            admin_views.apply_review_decision(
                self.model_admin, self.request, issuance=issuance, decision="deny",
                reason=form.cleaned_data["reason"],
            )
        return self.back_to_the_list()

    def ask(self, form) -> HttpResponse:
        return admin_views.render_page(
            self.model_admin, self.request, "admin/vouchers/issuance/deny_selected_confirmation.html",
            title=_("Deny issuances held for review"), form=form, issuances=self.rows,
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
