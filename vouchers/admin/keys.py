"""The admin's "Revoke API key" page: revoke one storefront key for good, with an optional reason.

(The key list's "Revoke selected API keys" action does the same for several keys.)
The service revokes with one conditional UPDATE and writes the audit entry in the
same transaction.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from config.admin_console import posted, render_page
from config.errors import DomainError
from vouchers.admin.views import change_url
from vouchers.services.api_keys import revoke_storefront_key


class RevokeKeyForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=500, strip=True, widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional; kept in the audit log (e.g. “the till was stolen”)."),
    )


def revoke_key_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    api_key = model_admin.get_object(request, unquote(object_id))
    if api_key is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)
    if not model_admin.has_revoke_permission(request):
        raise PermissionDenied
    form = RevokeKeyForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            revoke_storefront_key(
                api_key=api_key, revoked_by=request.user, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
        else:
            model_admin.log_change(request, api_key, "Revoked.")
            messages.success(request, _("API key %(p0)s (%(p1)s) is revoked.") % {
                "p0": api_key.prefix, "p1": api_key.name})
            return HttpResponseRedirect(change_url(api_key))
    return render_page(
        model_admin, request, "admin/vouchers/storefrontapikey/revoke.html",
        title=_("Revoke API key %(p0)s") % {
            "p0": api_key.prefix}, form=form, api_key=api_key, key_url=change_url(api_key),
    )
