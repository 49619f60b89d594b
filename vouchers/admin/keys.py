"""The admin's "Revoke API key" page: revoke one storefront key for good, with an optional reason.

(The key list's "Revoke selected API keys" action does the same for several keys.)
The service revokes with one conditional UPDATE and writes the audit entry in the
same transaction.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from config.admin_confirm import ObjectConfirmView
from config.admin_console import render_page
from config.errors import DomainError
from vouchers.admin.views import change_url
from vouchers.services.api_keys import revoke_storefront_key


class RevokeKeyForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=500, strip=True, widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional; kept in the audit log (e.g. “the till was stolen”)."),
    )


class RevokeKeyPage(ObjectConfirmView):
    def permitted(self) -> bool:
        return self.model_admin.has_revoke_permission(self.request)

    def make_form(self, data):
        return RevokeKeyForm(data)

    def apply(self, form) -> HttpResponse | None:
        api_key, request = self.obj, self.request
        try:
            revoke_storefront_key(
                api_key=api_key, revoked_by=request.user, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
            return None
        self.model_admin.log_change(request, api_key, "Revoked.")
        messages.success(request, _("API key %(p0)s (%(p1)s) is revoked.") % {
            "p0": api_key.prefix, "p1": api_key.name})
        return HttpResponseRedirect(change_url(api_key))

    def ask(self, form) -> HttpResponse:
        api_key = self.obj
        return render_page(
            self.model_admin, self.request, "admin/vouchers/storefrontapikey/revoke.html",
            title=_("Revoke API key %(p0)s") % {
                "p0": api_key.prefix}, form=form, api_key=api_key, key_url=change_url(api_key),
        )


def revoke_key_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    return RevokeKeyPage.view(model_admin, request, object_id)
