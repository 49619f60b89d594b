"""The voucher admin's own pages: generate and import codes, batch status, API keys, find a code,
review decisions and canary codes.

Each view checks permission and tenancy, validates a form, calls one service and
turns a domain error into a form error or an admin message (never a 500).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from config.admin_confirm import ConfirmView, ObjectConfirmView
from config.admin_console import render_page
from config.errors import DomainError
from config.tenancy import is_unscoped, scoped_choices, staff_merchant
from vouchers import selectors
from vouchers.admin.forms import (
    BatchStatusForm,
    CreateAPIKeyForm,
    FindCodeForm,
    GenerateCodesForm,
    ImportCodesForm,
    PlantCanariesForm,
    ReviewDecisionForm,
)
from vouchers.exceptions import ImportRejected, InvalidBatchSettings
from vouchers.models import Batch, Code, Issuance, Product
from vouchers.services import batch_status
from vouchers.services.api_keys import create_storefront_key
from vouchers.services.canaries import plant_canaries
from vouchers.services.events import actor_for_user
from vouchers.services.generation import generate_batch
from vouchers.services.imports import import_codes
from vouchers.services.reviews import approve_review, deny_review

logger = logging.getLogger(__name__)

REPORT_ROWS_SHOWN = 100


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])


# --- loading codes --------------------------------------------------------------------


class LoadPage(ConfirmView):
    """A page that loads codes into a new batch (generate, import): staff allowed to load only."""

    def respond(self) -> HttpResponse:
        if not self.model_admin.has_load_permission(self.request):
            raise PermissionDenied
        return super().respond()

    def products(self):
        return scoped_choices(Product, self.request).filter(is_active=True)


class GenerateCodesPage(LoadPage):
    """Generate a batch of random codes for one of the merchant's products."""

    def make_form(self, data):
        return GenerateCodesForm(data, products=self.products())

    def apply(self, form) -> HttpResponse | None:
        model_admin, request, data = self.model_admin, self.request, form.cleaned_data
        from vouchers.admin import loads as admin_loads

        if background := admin_loads.start_generation_if_large(model_admin, request, data):
            return background
        try:
            batch = generate_batch(
                product=data["product"], count=data["count"], fmt=data["fmt"],
                valid_from=data.get("valid_from"), valid_until=data.get("valid_until"),
                created_by=request.user, reference=data.get("reference") or "",
            )
        except InvalidBatchSettings as exc:
            form.add_error(None, exc.detail)
            return None
        model_admin.log_addition(request, batch, f"Generated {batch.size} codes.")
        messages.success(request, _("Generated %(p0)s codes in batch %(p1)s.") % {
            "p0": f"{batch.size:,}", "p1": batch.pk})
        return HttpResponseRedirect(change_url(batch))

    def ask(self, form) -> HttpResponse:
        return render_page(
            self.model_admin, self.request, "admin/vouchers/batch/load_codes.html",
            title=_("Generate codes"), form=form, media=form.media,
        )


def generate_codes_view(model_admin, request: HttpRequest) -> HttpResponse:
    return GenerateCodesPage(model_admin, request).respond()


class ImportCodesPage(LoadPage):
    """Import a supplier's file of codes as one batch; bad rows come back as a per-row report.

    The uploaded file is handed to the import service as a file object (a temporary file
    on disk for uploads over FILE_UPLOAD_MAX_MEMORY_SIZE), which streams it.
    """

    rejection: dict | None = None

    def make_form(self, data):
        files = self.request.FILES if data is not None else None
        return ImportCodesForm(data, files, products=self.products())

    def apply(self, form) -> HttpResponse | None:
        model_admin, request, data = self.model_admin, self.request, form.cleaned_data
        uploaded = data["file"]
        from vouchers.admin import loads as admin_loads

        if background := admin_loads.start_import_if_large(model_admin, request, data):
            return background
        try:
            result = import_codes(
                product=data["product"], file=uploaded, filename=uploaded.name,
                encoding=data.get("encoding") or None, file_format=data.get("file_format") or None,
                skip_invalid=data["skip_invalid"], case_sensitive=data["case_sensitive"],
                valid_from=data.get("valid_from"), valid_until=data.get("valid_until"),
                created_by=request.user, allow_weak_codes=data["allow_weak_codes"],
                reference=data.get("reference") or uploaded.name,
            )
        except ImportRejected as exc:
            shown = exc.report[:REPORT_ROWS_SHOWN]
            self.rejection = {
                "detail": exc.detail, "bad_rows": exc.bad_rows, "rows": shown,
                "more": max(exc.bad_rows - len(shown), 0),
            }
            form.add_error(None, _("The file was rejected: %(p0)s bad rows. Nothing was stored.") % {
                "p0": f"{exc.bad_rows:,}"})
            return None
        except InvalidBatchSettings as exc:
            form.add_error(None, exc.detail)
            return None
        return _imported(model_admin, request, result)

    def ask(self, form) -> HttpResponse:
        return render_page(
            self.model_admin, self.request, "admin/vouchers/batch/load_codes.html",
            title=_("Import codes"), form=form, media=form.media, rejection=self.rejection, multipart=True,
        )


def import_codes_view(model_admin, request: HttpRequest) -> HttpResponse:
    return ImportCodesPage(model_admin, request).respond()


def _imported(model_admin, request: HttpRequest, result) -> HttpResponse:
    batch = result.batch
    model_admin.log_addition(request, batch, f"Imported {result.imported} codes.")
    summary = _("Imported %(p0)s codes into batch %(p1)s.") % {"p0": f"{result.imported:,}", "p1": batch.pk}
    if not result.skipped:
        messages.success(request, summary)
        return HttpResponseRedirect(change_url(batch))
    # Rendered, not redirected: the report is shown once and kept nowhere.
    shown = result.report[:REPORT_ROWS_SHOWN]
    return render_page(
        model_admin, request, "admin/vouchers/batch/import_done.html",
        title=_("Codes imported"), batch=batch, summary=summary, skipped=result.skipped,
        rows=shown, more=max(result.skipped - len(shown), 0), batch_url=change_url(batch),
    )


# --- batch status ---------------------------------------------------------------------

STATUS_ACTIONS: dict[str, tuple[str, Callable[..., object]]] = {
    "pause": ("Pause batch", batch_status.pause_batch),
    "resume": ("Resume batch", batch_status.resume_batch),
    "void": ("Void batch", batch_status.void_batch),
}


class BatchStatusPage(ObjectConfirmView):
    """Confirm (GET) and apply (POST) a pause, resume or void of one batch."""

    def __init__(self, model_admin, request: HttpRequest, *, action: str) -> None:
        if action not in STATUS_ACTIONS:
            raise Http404("no such status change")
        super().__init__(model_admin, request)
        self.action = action

    def permitted(self) -> bool:
        return self.model_admin.has_status_permission(self.request, self.obj)

    def make_form(self, data):
        return BatchStatusForm(data, reason_required=self.action == "void")

    def apply(self, form) -> HttpResponse:
        apply_status_change(self.model_admin, self.request, batch=self.obj, action=self.action,
                            reason=form.cleaned_data.get("reason", ""))
        return HttpResponseRedirect(change_url(self.obj))

    def ask(self, form) -> HttpResponse:
        batch = self.obj
        stock = selectors.stock_by_state([batch.pk])[batch.pk]
        return render_page(
            self.model_admin, self.request, "admin/vouchers/batch/status_confirm.html",
            title=_("%(p0)s %(p1)s") % {
                "p0": STATUS_ACTIONS[self.action][0], "p1": batch.pk}, form=form, batch=batch,
            action=self.action, stock=stock, batch_url=change_url(batch),
        )


def batch_status_view(model_admin, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
    return BatchStatusPage.view(model_admin, request, object_id, action=action)


def void_inline_limit() -> int:
    """Above this many codes in stock, a void runs in the background (a web request would time out)."""
    return getattr(settings, "VOUCHER_VOID_INLINE_LIMIT", 50_000)


def apply_status_change(
    model_admin, request: HttpRequest, *, batch: Batch, action: str, reason: str = ""
) -> bool:
    """Call the status service for one batch and report the outcome as an admin message.

    A void of more codes in stock than void_inline_limit() is handed to a background task.
    """
    if action == "void":
        in_stock = selectors.stock_by_state([batch.pk])[batch.pk][Code.State.AVAILABLE]
        if in_stock > void_inline_limit():
            return _void_in_background(model_admin, request, batch=batch, reason=reason, in_stock=in_stock)
    try:
        if action == "void":
            voided = batch_status.void_batch(batch=batch, actor_user=request.user, reason=reason)
            outcome = _("Batch %(p0)s voided: %(p1)s codes in stock became void.") % {
                "p0": batch.pk, "p1": f"{voided:,}"}
        else:
            STATUS_ACTIONS[action][1](batch=batch, actor_user=request.user)
            outcome = _("Batch %(p0)s is now %(p1)s.") % {"p0": batch.pk, "p1": batch.status}
    except DomainError as exc:
        model_admin.message_user(request, _("Batch %(p0)s: %(p1)s.") % {
            "p0": batch.pk, "p1": exc.detail}, messages.ERROR)
        return False
    model_admin.log_change(request, batch, outcome)
    model_admin.message_user(request, outcome, messages.SUCCESS)
    return True


def _void_in_background(
    model_admin, request: HttpRequest, *, batch: Batch, reason: str, in_stock: int
) -> bool:
    """Pause the batch now (it stops selling at once) and void it in a task after commit.

    The task takes ids and the reason only, never a code, and is safe to run twice.
    """
    from vouchers.tasks import void_batch_task  # tasks import services; keep the admin importable alone

    if not reason.strip():
        model_admin.message_user(request, _("Batch %(p0)s: a reason is required to void a batch.") % {
            "p0": batch.pk},
                                 messages.ERROR)
        return False
    try:
        if batch.status == Batch.Status.ACTIVE:
            batch_status.pause_batch(batch=batch, actor_user=request.user)
        elif batch.status != Batch.Status.PAUSED:
            raise batch_status.InvalidBatchTransition(f"a batch that is {batch.status} cannot be voided")
    except DomainError as exc:
        model_admin.message_user(request, _("Batch %(p0)s: %(p1)s.") % {
            "p0": batch.pk, "p1": exc.detail}, messages.ERROR)
        return False
    batch_id, user_id = batch.pk, request.user.pk
    transaction.on_commit(
        lambda: void_batch_task.delay(batch_id=batch_id, user_id=user_id, reason=reason)
    )
    outcome = (
        _("Batch %(p0)s: voiding %(p1)s codes in the background. "
          "It is paused (sells nothing) until then.") % {"p0": batch.pk, "p1": f"{in_stock:,}"}
    )
    model_admin.log_change(request, batch, outcome)
    model_admin.message_user(request, outcome, messages.SUCCESS)
    return True


# --- storefront API keys --------------------------------------------------------------


class CreateApiKeyPage(ObjectConfirmView):
    """Create a storefront API key and show it exactly once, in this response only.

    The key is rendered straight into the response to the POST (no redirect, no
    message, no session), so it is stored nowhere and no later page can show it.
    """

    def permitted(self) -> bool:
        return self.model_admin.has_key_permission(self.request, self.obj)

    def make_form(self, data):
        return CreateAPIKeyForm(data)

    def apply(self, form) -> HttpResponse | None:
        storefront, request = self.obj, self.request
        try:
            api_key, plaintext = create_storefront_key(
                storefront=storefront, name=form.cleaned_data["name"], created_by=request.user
            )
        except DomainError as exc:
            form.add_error("name", exc.detail)
            return None
        summary = f"Created API key {api_key.prefix} ({api_key.name})."
        self.model_admin.log_change(request, storefront, summary)
        return render_page(
            self.model_admin, request, "admin/vouchers/storefront/api_key_created.html",
            title=_("API key created"), storefront=storefront, api_key=api_key, plaintext_key=plaintext,
            storefront_url=change_url(storefront),
        )

    def ask(self, form) -> HttpResponse:
        storefront = self.obj
        return render_page(
            self.model_admin, self.request, "admin/vouchers/storefront/api_key_form.html",
            title=_("Create an API key for %(p0)s") % {"p0": storefront.name}, form=form,
            storefront=storefront, storefront_url=change_url(storefront),
        )


def create_api_key_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    return CreateApiKeyPage.view(model_admin, request, object_id)


# --- codes ----------------------------------------------------------------------------


class FindCodePage(ConfirmView):
    """Find one of the merchant's codes by the code itself, through the blind index.

    The code comes by POST (never in a URL or an access log), is not logged or kept,
    and is never echoed back: a match redirects to the code's page by id, a miss
    shows an empty form. Another merchant's code is a miss, like an unknown one.
    """

    missed = False

    def respond(self) -> HttpResponse:
        if not self.model_admin.has_view_permission(self.request):
            raise PermissionDenied
        return super().respond()

    def make_form(self, data):
        return FindCodeForm(data)

    def apply(self, form) -> HttpResponse | None:
        request = self.request
        code = selectors.find_code(form.cleaned_data["code"], select_related=("batch",))
        found = code is not None and self.model_admin.get_queryset(request).filter(pk=code.pk).exists()
        logger.info(
            "code lookup by %s: %s", actor_for_user(request.user),
            f"code {code.pk}" if code is not None and found else "no match",
        )
        if found:
            return HttpResponseRedirect(change_url(code))
        messages.warning(request, _("No code of yours matches what was typed."))
        self.missed = True
        return None

    def ask(self, form) -> HttpResponse:
        if self.missed:
            form = FindCodeForm()  # what was typed is never echoed back
        return render_page(
            self.model_admin, self.request, "admin/vouchers/code/find_code.html", title=_("Find a code"),
            form=form,
        )


def find_code_view(model_admin, request: HttpRequest) -> HttpResponse:
    return FindCodePage(model_admin, request).respond()


# --- fraud reviews --------------------------------------------------------------------

REVIEW_DECISIONS = {"approve": "Approve", "deny": "Deny"}


def review_queue_url() -> str:
    return reverse("admin:vouchers_issuance_review_queue")


class ReviewDecisionPage(ObjectConfirmView):
    """Confirm (GET) and apply (POST) a reviewer's approval or denial of one held issuance."""

    def __init__(self, model_admin, request: HttpRequest, *, decision: str) -> None:
        if decision not in REVIEW_DECISIONS:
            raise Http404("no such review decision")
        super().__init__(model_admin, request)
        self.decision = decision

    def permitted(self) -> bool:
        return self.model_admin.has_review_permission(self.request, self.obj)

    def make_form(self, data):
        return ReviewDecisionForm(data, reason_required=self.decision == "deny")

    def apply(self, form) -> HttpResponse:
        apply_review_decision(
            self.model_admin, self.request, issuance=self.obj, decision=self.decision,
            reason=form.cleaned_data.get("reason", ""),
        )
        return HttpResponseRedirect(review_queue_url())

    def ask(self, form) -> HttpResponse:
        issuance, model_admin = self.obj, self.model_admin
        if issuance.status != Issuance.Status.REVIEW:
            model_admin.message_user(
                self.request,
                _("Issuance %(p0)s is %(p1)s; only an issuance in review can be decided.") % {
                    "p0": issuance.pk, "p1": issuance.status},
                messages.WARNING,
            )
            return HttpResponseRedirect(change_url(issuance))
        return render_page(
            model_admin, self.request, "admin/vouchers/issuance/review_confirm.html",
            title=_("%(p0)s issuance %(p1)s") % {
                "p0": REVIEW_DECISIONS[self.decision], "p1": issuance.pk}, form=form, issuance=issuance,
            decision=self.decision, assessment=model_admin.fraud_decisions([issuance.pk]).get(issuance.pk),
            issuance_url=change_url(issuance), queue_url=review_queue_url(),
        )


def review_decision_view(model_admin, request: HttpRequest, object_id: str, decision: str) -> HttpResponse:
    return ReviewDecisionPage.view(model_admin, request, object_id, decision=decision)


def reviewer_merchant_id(request: HttpRequest) -> int | None:
    """The merchant a reviewer decides for: their staff row's, or None (every merchant) for a superuser."""
    if is_unscoped(request):
        return None
    merchant = staff_merchant(request)
    if merchant is None:  # the admin's permission checks stop such a user before this
        raise PermissionDenied
    return merchant.pk


def apply_review_decision(
    model_admin, request: HttpRequest, *, issuance: Issuance, decision: str, reason: str = ""
) -> bool:
    """Call the review service for one issuance and report the outcome as an admin message.

    NotFound, InvalidState and ReservationExpired (the review ran out; its codes went
    back to stock) become error messages.
    """
    merchant_id = reviewer_merchant_id(request)
    try:
        if decision == "approve":
            decided = approve_review(issuance_id=issuance.pk, reviewer=request.user, merchant_id=merchant_id)
            outcome = (
                _("Issuance %(p0)s approved: its %(p1)s code(s) are issued; "
                  "the storefront gets them from the API.") % {"p0": decided.pk, "p1": decided.quantity}
            )
        else:
            decided = deny_review(
                issuance_id=issuance.pk, reviewer=request.user, merchant_id=merchant_id, reason=reason
            )
            outcome = _("Issuance %(p0)s denied: its %(p1)s code(s) went back to stock.") % {
                "p0": decided.pk, "p1": decided.quantity}
    except DomainError as exc:
        model_admin.message_user(request, _("Issuance %(p0)s: %(p1)s") % {
            "p0": issuance.pk, "p1": exc.detail}, messages.ERROR)
        return False
    model_admin.log_change(request, decided, outcome)
    model_admin.message_user(request, outcome, messages.SUCCESS)
    return True


# --- canary codes ---------------------------------------------------------------------


class PlantCanariesPage(ObjectConfirmView):
    """Plant canary codes in a batch and show their plaintexts exactly once, in this response.

    Like a new API key, the codes are rendered straight into the response to the POST:
    no redirect, no message, no session, no log line, so no later page can show them.
    Error reports show the plaintexts of `apply` as stars.
    """

    def permitted(self) -> bool:
        return self.model_admin.has_canary_permission(self.request, self.obj)

    def make_form(self, data):
        return PlantCanariesForm(data)

    @sensitive_variables("plaintexts")
    def apply(self, form) -> HttpResponse | None:
        batch, request = self.obj, self.request
        try:
            plaintexts = plant_canaries(
                batch=batch, count=form.cleaned_data["count"], actor_user=request.user
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
            return None
        summary = _("Planted %(p0)s canary codes.") % {"p0": len(plaintexts)}
        self.model_admin.log_change(request, batch, summary)
        logger.info(
            "batch %s: %s canary codes planted by %s",
            batch.pk, len(plaintexts), actor_for_user(request.user),
        )
        return render_page(
            self.model_admin, request, "admin/vouchers/batch/canaries_planted.html",
            title=_("Canary codes for %(p0)s") % {"p0": batch}, batch=batch, canaries=plaintexts,
            batch_url=change_url(batch),
        )

    def ask(self, form) -> HttpResponse:
        batch = self.obj
        return render_page(
            self.model_admin, self.request, "admin/vouchers/batch/plant_canaries.html",
            title=_("Plant canary codes in %(p0)s") % {"p0": batch}, form=form, batch=batch,
            canary_count=self.model_admin.canary_count(batch), batch_url=change_url(batch),
        )


def plant_canaries_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    return PlantCanariesPage.view(model_admin, request, object_id)
