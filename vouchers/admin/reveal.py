"""The admin's "Reveal code" page: one code's plaintext, with a reason, audited and rate limited.

GET shows the code (by id and last 4) and asks for a reason; POST calls the reveal
service and renders the plaintext straight into that response (no redirect, message,
session or log line, and `Cache-Control: no-store`), so no later page shows it. Each
staff member may reveal REVEAL_RATE codes (default 10 an hour, django-ratelimit on the
shared cache); a refused attempt reveals and records nothing.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables
from django_ratelimit.core import is_ratelimited

from config.admin_confirm import ObjectConfirmView
from config.admin_console import render_page
from config.errors import DomainError
from config.tenancy import has_tenant, is_unscoped, staff_merchant
from vouchers.admin.views import change_url
from vouchers.services.reveal import MAX_REASON_LENGTH, reveal_code

RATE_GROUP = "vouchers.reveal_code"


def reveal_rate() -> str:
    return getattr(settings, "REVEAL_RATE", "10/h")


class RevealCodeForm(forms.Form):
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH, strip=True, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why this code must be seen (kept in the audit log with your name)."),
    )


def has_reveal_permission(request: HttpRequest) -> bool:
    return has_tenant(request) and request.user.has_perm("vouchers.reveal_code")


class RevealCodePage(ObjectConfirmView):
    status = 200

    def permitted(self) -> bool:
        return has_reveal_permission(self.request)

    def make_form(self, data):
        return RevealCodeForm(data)

    @sensitive_variables("plaintext")
    def apply(self, form) -> HttpResponse | None:
        request = self.request
        limited = is_ratelimited(
            request, group=RATE_GROUP, key="user", rate=reveal_rate(), method="POST", increment=True,
        )
        if limited:
            form.add_error(None, _("You have revealed too many codes recently. Try again later."))
            self.status = 429
            return None
        merchant = None if is_unscoped(request) else staff_merchant(request)
        try:
            code, plaintext = reveal_code(
                code_id=self.obj.pk, user=request.user,
                merchant_id=None if merchant is None else merchant.pk,
                reason=form.cleaned_data["reason"],
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
            return None
        response = render_page(
            self.model_admin, request, "admin/vouchers/code/revealed.html",
            title=_("Code %(p0)s revealed") % {"p0": code.pk}, code=code, plaintext=plaintext,
            code_url=change_url(code),
        )
        response["Cache-Control"] = "no-store, private"
        return response

    def ask(self, form) -> HttpResponse:
        code = self.obj
        if self.status == 429:
            messages.error(self.request, _("Reveal refused: rate limit reached."))
        return render_page(
            self.model_admin, self.request, "admin/vouchers/code/reveal.html",
            title=_("Reveal code %(p0)s") % {"p0": code.pk}, form=form, code=code, code_url=change_url(code),
            status=self.status,
        )


def reveal_code_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    return RevealCodePage.view(model_admin, request, object_id)
