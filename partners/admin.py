"""Settlement in the admin, scoped to the staff member's merchant (config.admin_console).

- Partners: every staff member may view the partners their merchant has agreements
  with, and add a partner; editing a partner and creating or revoking partner API keys
  (a key acts across every merchant of the partner) is for superusers.
- Agreements and their versions: own merchant only; a version that has priced an event
  is read-only (a change is a new version from a date), overlapping versions refused.
- Ledger entries, statements, lines and events: read-only records. A statement page
  shows its totals by kind, links to its CSV and signed document, and lets staff record
  a payment. Disputes are resolved here (accept: an adjustment entry; reject: a reason).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config import versions
from config.admin_confirm import ConfirmView, ObjectConfirmView
from config.admin_console import MerchantScopedAdmin, ReadOnlyPermissions, RecordAdmin, superuser_only
from config.errors import DomainError
from config.tenancy import has_tenant, is_unscoped, scope_queryset, staff_merchant
from partners.csvexport import csv_rows
from partners.exceptions import AgreementVersionInUse, AgreementVersionOverlap, InvalidAgreementTerms
from partners.models import (
    Agreement,
    AgreementVersion,
    Dispute,
    LedgerEntry,
    Partner,
    PartnerAPIKey,
    Statement,
    StatementEvent,
)
from partners.money import format_minor, to_minor
from partners.services import statements as statement_service
from partners.services.agreements import (
    add_version,
    change_version,
    check_version,
    validate_timezone,
    version_is_used,
)
from partners.services.keys import create_partner_key, revoke_partner_key
from vouchers.services.events import actor_for_user

# --- partners and their keys -------------------------------------------------------


class PartnerKeyForm(forms.Form):
    name = forms.CharField(
        max_length=50, label=gettext_lazy("Name"),
        help_text=gettext_lazy("What the key is for, e.g. 'finance system'."),
    )


@admin.register(Partner)
class PartnerAdmin(MerchantScopedAdmin):
    merchant_paths = ("agreements__merchant",)
    list_display = ("name", "slug", "contact_email", "active_keys", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("name", "slug", "contact_email")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .distinct()
            .annotate(active_key_count=Count("api_keys", filter=Q(api_keys__revoked=False), distinct=True))
        )

    @admin.display(description=gettext_lazy("active API keys"))
    def active_keys(self, obj):
        return obj.active_key_count

    def has_change_permission(self, request, obj=None):
        if obj is not None and not superuser_only(request):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return superuser_only(request)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/api-keys/new/",
                self.admin_site.admin_view(self.create_key_view),
                name="partners_partner_create_api_key",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk and superuser_only(request):
            context["create_key_url"] = reverse("admin:partners_partner_create_api_key", args=[quote(obj.pk)])
            self.message_user(
                request,
                format_html(
                    _('<a href="{}">Create a partner API key</a> (shown once).'), context["create_key_url"]
                ),
                messages.INFO,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def create_key_view(self, request, object_id):
        return CreatePartnerKeyPage.view(self, request, object_id)


def form_page_context(model_admin, request, form, *, title, submit_label, intro) -> dict:
    """The context of admin/partners/form_page.html, the settlement pages' one-form page."""
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "form": form,
        "title": title,
        "submit_label": submit_label,
        "intro": intro,
    }


class CreatePartnerKeyPage(ObjectConfirmView):
    """Create a partner API key (superusers only) and show it once, in the response to the POST."""

    def find(self, object_id):
        if not superuser_only(self.request):
            raise PermissionDenied
        return get_object_or_404(Partner, pk=object_id)

    def permitted(self) -> bool:
        return True  # find() let only a superuser this far

    def make_form(self, data):
        return PartnerKeyForm(data or None)

    def context(self, form) -> dict:
        return form_page_context(
            self.model_admin, self.request, form,
            title=_("New API key for %(partner)s") % {"partner": self.obj},
            submit_label=_("Create API key"),
            intro=_("The key is shown once, on the next page. Only its prefix and a hash are kept."),
        )

    def apply(self, form) -> HttpResponse:
        partner, request = self.obj, self.request
        api_key, plaintext = create_partner_key(partner=partner, name=form.cleaned_data["name"])
        self.model_admin.log_change(
            request, partner, _("Created API key %(prefix)s.") % {"prefix": api_key.prefix}
        )
        return TemplateResponse(
            request,
            "admin/partners/key_created.html",
            {
                **self.context(form),
                "api_key": api_key,
                "plaintext_key": plaintext,
                "partner": partner,
                "back_url": reverse("admin:partners_partner_change", args=[quote(partner.pk)]),
                "title": _("Partner API key created"),
            },
        )

    def ask(self, form) -> HttpResponse:
        return TemplateResponse(self.request, "admin/partners/form_page.html", self.context(form))


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(ReadOnlyPermissions, MerchantScopedAdmin):
    """Keys by prefix; created from the partner's page (shown once), revoked here."""

    merchant_paths = ("partner__agreements__merchant",)
    list_display = ("prefix", "name", "partner", "created", "revoked")
    list_filter = ("revoked",)
    fields = ("prefix", "name", "partner", "created", "expiry_date", "revoked")
    readonly_fields = fields
    actions = ("revoke_selected",)

    def get_queryset(self, request):
        return super().get_queryset(request).distinct()

    def has_revoke_permission(self, request) -> bool:
        return superuser_only(request)

    @admin.action(description=gettext_lazy("Revoke selected partner API keys"), permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        for api_key in queryset:
            revoke_partner_key(api_key=api_key)
            self.log_change(request, api_key, _("Revoked."))
        revoked = _("Revoked %(count)d key(s).") % {"count": queryset.count()}
        self.message_user(request, revoked, messages.SUCCESS)


# --- agreements ----------------------------------------------------------------------


class AgreementForm(forms.ModelForm):
    class Meta:
        model = Agreement
        fields = ("merchant", "partner", "name", "currency", "period", "timezone", "dispute_window_days")

    def clean_timezone(self):
        value = self.cleaned_data["timezone"]
        try:
            validate_timezone(value)
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from None
        return value

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.entries.exists():
            changed = [f for f in ("currency", "period", "timezone", "partner") if f in self.changed_data]
            if changed:
                raise forms.ValidationError(
                    _("This agreement has ledger entries; %(fields)s cannot change.")
                    % {"fields": ", ".join(changed)}
                )
        return cleaned


class AgreementVersionForm(forms.ModelForm):
    class Meta:
        model = AgreementVersion
        fields = (
            "agreement",
            "products",
            "basis",
            "direction",
            "unit_amount_minor",
            "rate_bps",
            "valid_from",
            "valid_until",
        )

    def clean(self):
        """The service's own rules (partners.services.agreements.check_version), as form errors;
        the admin then saves through add_version / change_version, which check them again
        under the agreement's lock."""
        cleaned = super().clean()
        agreement = cleaned.get("agreement")
        if self.instance.pk is not None and version_is_used(self.instance):
            raise forms.ValidationError(
                _("This version has priced events and cannot change; add a new version.")
            )
        if agreement is None or cleaned.get("valid_from") is None:
            return cleaned
        try:
            check_version(
                agreement,
                products=list(cleaned.get("products") or []),
                unit_amount_minor=cleaned.get("unit_amount_minor"),
                rate_bps=cleaned.get("rate_bps"),
                valid_from=cleaned["valid_from"],
                valid_until=cleaned.get("valid_until"),
                version=self.instance if self.instance.pk is not None else None,
            )
        except (AgreementVersionInUse, AgreementVersionOverlap, InvalidAgreementTerms) as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


@admin.register(Agreement)
class AgreementAdmin(MerchantScopedAdmin):
    form = AgreementForm
    merchant_field = "merchant"
    merchant_paths = ("merchant",)
    list_display = ("__str__", "merchant", "partner", "currency", "period", "timezone", "dispute_window_days")
    list_select_related = ("merchant", "partner")
    search_fields = ("name", "partner__name")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # The ledger's cached copies of the versions carry their agreement (currency,
        # partner): the merchant's, and a former merchant's, are out of date.
        bump_agreements(obj.merchant_id, form.initial.get("merchant") if change else None)


def bump_agreements(*merchant_ids) -> None:
    """Invalidate the ledger's in-process copies of these merchants' agreements (after commit)."""
    for merchant_id in {m for m in merchant_ids if m is not None}:
        versions.bump(merchant_id, versions.AGREEMENTS)


@admin.register(AgreementVersion)
class AgreementVersionAdmin(MerchantScopedAdmin):
    form = AgreementVersionForm
    merchant_paths = ("agreement__merchant",)
    list_display = (
        "__str__",
        "basis",
        "direction",
        "unit_amount_minor",
        "rate_bps",
        "valid_from",
        "valid_until",
        "used",
    )
    list_select_related = ("agreement__merchant", "agreement__partner")
    filter_horizontal = ("products",)

    @admin.display(boolean=True, description=gettext_lazy("priced events"))
    def used(self, obj):
        return version_is_used(obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "agreement":
            kwargs["queryset"] = scope_queryset(Agreement.objects.all(), request, paths=("merchant",))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and version_is_used(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Through the service: it locks the agreement and checks overlap and use again."""
        terms = {
            "basis": obj.basis,
            "direction": obj.direction,
            "unit_amount_minor": obj.unit_amount_minor,
            "rate_bps": obj.rate_bps,
            "valid_from": obj.valid_from,
            "valid_until": obj.valid_until,
        }
        products = list(form.cleaned_data.get("products") or [])
        if change:
            change_version(version=obj, products=products, **terms)  # bumps the cached copies
            # A version moved to another merchant's agreement: that merchant's copies too.
            former = form.initial.get("agreement")
            if former is not None and former != obj.agreement_id:
                former_merchant = Agreement.objects.filter(pk=former).values_list("merchant_id", flat=True)
                bump_agreements(former_merchant.first())
            return
        version = add_version(agreement=obj.agreement, products=products, **terms)
        obj.pk, obj.number = version.pk, version.number
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        # The products were set by the service; only inline formsets (none today) remain.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


# --- ledger and statements -------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(RecordAdmin):
    merchant_paths = ("merchant",)
    list_display = (
        "seq",
        "partner",
        "kind",
        "amount",
        "sku",
        "code_last4",
        "source_type",
        "source_id",
        "occurred_at",
        "recorded_at",
    )
    list_filter = ("kind", "currency")
    list_select_related = ("partner",)
    search_fields = ("=source_id", "=sku")

    @admin.display(description=gettext_lazy("amount"))
    def amount(self, obj):
        return f"{format_minor(obj.amount_minor, obj.currency)} {obj.currency}"


class PaymentForm(forms.Form):
    amount = forms.CharField(max_length=24, label=gettext_lazy("Amount"),
                             help_text=gettext_lazy("Paid towards this statement, e.g. 12.50."))
    reference = forms.CharField(max_length=200, required=False, label=gettext_lazy("Reference"),
                                help_text=gettext_lazy("Bank reference."))


@admin.register(Statement)
class StatementAdmin(RecordAdmin):
    merchant_paths = ("merchant",)
    list_display = (
        "number",
        "partner",
        "currency",
        "period_start",
        "period_end",
        "total",
        "status",
        "payment",
        "line_count",
    )
    list_select_related = ("partner", "merchant")
    list_filter = ("currency",)
    fields = (
        "number",
        "merchant",
        "partner",
        "currency",
        "timezone",
        "period_start",
        "period_end",
        "balances",
        "totals_by_kind",
        "line_count",
        "issued_at",
        "dispute_deadline",
        "status",
        "payment",
        "content_sha256",
        "previous_sha256",
        "kid",
        "evidence",
        "lines_preview",
        "history",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("document")

    @admin.display(description=gettext_lazy("total"))
    def total(self, obj):
        return f"{format_minor(obj.total_minor, obj.currency)} {obj.currency}"

    @admin.display(description=gettext_lazy("status"))
    def status(self, obj):
        return statement_service.lifecycle_status(obj)

    @admin.display(description=gettext_lazy("payment"))
    def payment(self, obj):
        return statement_service.payment_status(obj)

    @admin.display(description=gettext_lazy("opening / total / closing"))
    def balances(self, obj):
        c = obj.currency
        return (
            f"{format_minor(obj.opening_minor, c)} + {format_minor(obj.total_minor, c)} = "
            f"{format_minor(obj.closing_minor, c)} {c}"
        )

    @admin.display(description=gettext_lazy("totals by kind"))
    def totals_by_kind(self, obj):
        rows = (
            LedgerEntry.objects.filter(line__statement=obj)
            .values("kind")
            .annotate(total=Sum("amount_minor"), n=Count("id"))
            .order_by("kind")
        )
        return (
            format_html_join(
                ", ",
                _("{}: {} ({} lines)"),
                ((r["kind"], format_minor(r["total"], obj.currency), r["n"]) for r in rows),
            )
            or "-"
        )

    @admin.display(description=gettext_lazy("evidence"))
    def evidence(self, obj):
        csv_url = reverse("admin:partners_statement_csv", args=[quote(obj.pk)])
        doc_url = reverse("admin:partners_statement_document", args=[quote(obj.pk)])
        sig_url = reverse("admin:partners_statement_signature", args=[quote(obj.pk)])
        pay_url = reverse("admin:partners_statement_payment", args=[quote(obj.pk)])
        return format_html(
            _('<a href="{}">lines (CSV)</a> · <a href="{}">signed document (JSON)</a> · '
              '<a href="{}">signature (JWS)</a> · <a href="{}">record a payment</a>'),
            csv_url,
            doc_url,
            sig_url,
            pay_url,
        )

    @admin.display(description=gettext_lazy("lines (first 200)"))
    def lines_preview(self, obj):
        lines = []
        for line in statement_service.iter_lines(obj, chunk=200):
            if len(lines) == 200:
                break
            lines.append(line)
        return format_html(
            "<table><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>…</th>"
            "<th>{}</th><th>{}</th></tr>{}</table>",
            _("kind"), _("occurred"), _("SKU"), _("source"), _("amount"), _("corrects"),
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td>"
                "<td>{}</td><td>{}</td></tr>",
                (
                    (
                        ln["line_no"],
                        ln["kind"],
                        ln["occurred_at"],
                        ln["sku"],
                        ln["source_type"],
                        ln["source_id"],
                        ln["code_last4"],
                        ln["amount"],
                        ln["original_statement"] or "",
                    )
                    for ln in lines
                ),
            ),
        )

    @admin.display(description=gettext_lazy("history"))
    def history(self, obj):
        events = StatementEvent.objects.filter(statement=obj).order_by("id")
        return (
            format_html_join(
                mark_safe("<br>"), _("{} {} by {}"), ((e.created_at, e.action, e.actor) for e in events)
            )
            or "-"
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("close-due/", view(self.close_due_view), name="partners_statement_close"),
            path("<path:object_id>/lines.csv", view(self.csv_view), name="partners_statement_csv"),
            path(
                "<path:object_id>/document.json", view(self.document_view), name="partners_statement_document"
            ),
            path(
                "<path:object_id>/signature.jws",
                view(self.signature_view),
                name="partners_statement_signature",
            ),
            path("<path:object_id>/payment/", view(self.payment_view), name="partners_statement_payment"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if has_tenant(request):
            self.message_user(
                request,
                format_html(
                    _('<a href="{}">Close due statements now</a> (also run daily).'),
                    reverse("admin:partners_statement_close"),
                ),
                messages.INFO,
            )
        return super().changelist_view(request, extra_context)

    def _own(self, request, object_id) -> Statement:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(self.get_queryset(request), pk=object_id)  # document deferred

    def csv_view(self, request, object_id):
        statement = self._own(request, object_id)
        response = StreamingHttpResponse(
            (row.encode() for row in csv_rows(statement_service.iter_lines(statement))),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="statement-{statement.number}.csv"'
        return response

    def document_view(self, request, object_id):
        statement = self._own(request, object_id)
        size, chunks = statement_service.document_chunks(statement)
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Length"] = str(size)
        response["Statement-Signature"] = statement.signature
        return response

    def signature_view(self, request, object_id):
        return HttpResponse(self._own(request, object_id).signature, content_type="text/plain")

    def close_due_view(self, request):
        if not has_tenant(request) or not self.has_view_permission(request):
            raise PermissionDenied
        return CloseDueStatementsPage(self, request).respond()

    def payment_view(self, request, object_id):
        return PaymentPage.view(self, request, object_id)


class CloseDueStatementsPage(ConfirmView):
    """Close every ended period of the staff member's agreements (also run daily by beat)."""

    def make_form(self, data):
        return forms.Form(data)

    def apply(self, form) -> HttpResponse:
        request = self.request
        agreements = Agreement.objects.all()
        if not is_unscoped(request):
            merchant = staff_merchant(request)
            agreements = agreements.filter(merchant_id=merchant.pk) if merchant else agreements.none()
        created = []
        for agreement_id in agreements.order_by("pk").values_list("pk", flat=True):
            created += statement_service.close_agreement(agreement_id=agreement_id, as_of=timezone.now())
        closed = _("Closed %(count)d statement(s).") % {"count": len(created)}
        self.model_admin.message_user(request, closed, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:partners_statement_changelist"))

    def ask(self, form) -> HttpResponse:
        return TemplateResponse(self.request, "admin/partners/form_page.html", form_page_context(
            self.model_admin, self.request, form,
            title=_("Close due statements"), submit_label=_("Close now"),
            intro=_("Closes every period of your agreements that has ended."),
        ))


class PaymentPage(ObjectConfirmView):
    """Record a payment against a statement (needs "Can add ledger entry", or a superuser)."""

    def find(self, object_id):
        return self.model_admin._own(self.request, object_id)

    def permitted(self) -> bool:
        return self.request.user.has_perm("partners.add_ledgerentry") or superuser_only(self.request)

    def make_form(self, data):
        return PaymentForm(data or None)

    def apply(self, form) -> HttpResponse | None:
        statement, request = self.obj, self.request
        try:
            amount = to_minor(form.cleaned_data["amount"], statement.currency)
            statement_service.record_payment(
                statement=statement,
                amount_minor=amount,
                actor=actor_for_user(request.user),
                reference=form.cleaned_data["reference"],
            )
        except (ValueError, ArithmeticError):
            form.add_error("amount", _("Not a %(currency)s amount.") % {"currency": statement.currency})
            return None
        except DomainError as exc:
            form.add_error(None, exc.detail)
            return None
        self.model_admin.message_user(request, _("Payment recorded."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:partners_statement_change", args=[quote(statement.pk)]))

    def ask(self, form) -> HttpResponse:
        statement = self.obj
        return TemplateResponse(self.request, "admin/partners/form_page.html", form_page_context(
            self.model_admin, self.request, form,
            title=_("Record a payment for statement %(number)s") % {"number": statement.number},
            submit_label=_("Record payment"),
            intro=_("Total %(total)s %(currency)s; payment status %(status)s.") % {
                "total": format_minor(statement.total_minor, statement.currency),
                "currency": statement.currency,
                "status": statement_service.payment_status(statement),
            },
        ))


class DisputeResolutionForm(forms.ModelForm):
    decision = forms.ChoiceField(
        choices=[
            ("", "—"),
            ("accept", gettext_lazy("Accept (adjustment entry)")),
            ("reject", gettext_lazy("Reject")),
        ],
        required=False, label=gettext_lazy("Decision"),
    )
    resolution = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                 label=gettext_lazy("Resolution"))
    adjustment_amount = forms.CharField(
        max_length=24,
        required=False,
        label=gettext_lazy("Adjustment amount"),
        help_text=gettext_lazy("Signed amount of the adjustment; empty = the claimed amount."),
    )

    class Meta:
        model = Dispute
        fields = ()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") and not cleaned.get("resolution"):
            self.add_error("resolution", _("Give the reason for the decision."))
        if cleaned.get("decision") == "accept":
            text = cleaned.get("adjustment_amount")
            currency = self.instance.statement.currency
            try:
                cleaned["amount_minor"] = (
                    to_minor(text, currency) if text else self.instance.claimed_amount_minor
                )
            except (ValueError, ArithmeticError):
                self.add_error("adjustment_amount", _("Not a %(currency)s amount.") % {"currency": currency})
                return cleaned
            if cleaned["amount_minor"] is None:
                self.add_error("adjustment_amount", _("Nothing was claimed: give the adjustment amount."))
        return cleaned


@admin.register(Dispute)
class DisputeAdmin(MerchantScopedAdmin):
    form = DisputeResolutionForm
    merchant_paths = ("statement__merchant",)
    list_display = ("statement", "status", "reason", "claimed", "created_at", "resolved_at")
    list_filter = ("status",)
    list_select_related = ("statement__partner",)
    readonly_fields = (
        "statement",
        "status",
        "reason",
        "lines",
        "claimed",
        "resolution_reason",
        "adjustment",
        "created_at",
        "resolved_at",
    )

    @admin.display(description=gettext_lazy("claimed"))
    def claimed(self, obj):
        c = obj.claimed_amount_minor
        return "-" if c is None else f"{format_minor(c, obj.statement.currency)} {obj.statement.currency}"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != Dispute.Status.OPEN:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        decision = form.cleaned_data.get("decision")
        if not decision:
            return
        try:
            statement_service.resolve_dispute(
                dispute=obj,
                accept=decision == "accept",
                reason=form.cleaned_data["resolution"],
                actor=actor_for_user(request.user),
                amount_minor=form.cleaned_data.get("amount_minor"),
            )
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)

    def save_related(self, request, form, formsets, change):
        """Nothing to save: the service wrote the dispute's resolution."""


@admin.register(StatementEvent)
class StatementEventAdmin(RecordAdmin):
    merchant_paths = ("statement__merchant",)
    list_display = ("created_at", "statement", "action", "actor")
    list_filter = ("action",)
