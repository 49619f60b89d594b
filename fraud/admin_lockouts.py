"""The fraud admin's "Lift lockout" page: end a lockout early, with a reason, audited.

Shown on a lockout event's page while the lockout it recorded is still running. Needs
the "Can change fraud event" permission (fraud.change_fraudevent); the event itself is
never edited. The service has the audit entry written; this view only asks and reports.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from config.admin_console import posted, render_page
from config.errors import DomainError
from config.tenancy import has_tenant
from fraud.exceptions import LockoutReasonRequired, RiskCheckUnavailable
from fraud.services.lockouts import lift_lockout, lock_remaining_seconds, scope_of_event


class LiftLockoutForm(forms.Form):
    reason = forms.CharField(
        max_length=500, strip=True, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the lockout ends early (kept in the audit log with your name)."),
    )


def has_lift_permission(request: HttpRequest) -> bool:
    return has_tenant(request) and request.user.has_perm("fraud.change_fraudevent")


def active_lockout_seconds(event) -> int:
    """Seconds the event's lockout still runs (0: ended, not a lockout, or counters unreachable)."""
    try:
        return lock_remaining_seconds(scope_of_event(event))
    except (DomainError, RiskCheckUnavailable):
        return 0


def lift_url(event) -> str:
    return reverse("admin:fraud_fraudevent_lift_lockout", args=[quote(event.pk)])


def lift_lockout_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    event = model_admin.get_object(request, unquote(object_id))
    if event is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)
    if not has_lift_permission(request):
        raise PermissionDenied
    event_url = reverse("admin:fraud_fraudevent_change", args=[quote(event.pk)])
    form = LiftLockoutForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            scope = lift_lockout(event=event, user=request.user, reason=form.cleaned_data["reason"])
        except (DomainError, LockoutReasonRequired, RiskCheckUnavailable) as exc:
            form.add_error(None, getattr(exc, "detail", str(exc)))
        else:
            messages.success(request, _("The %(p0)s lockout of event %(p1)s was lifted.") % {
                "p0": scope.name, "p1": event.pk})
            return HttpResponseRedirect(event_url)
    return render_page(
        model_admin, request, "admin/fraud/fraudevent/lift_lockout.html",
        title=_("Lift the lockout of event %(p0)s") % {
            "p0": event.pk}, form=form, event=event, event_url=event_url,
        remaining=active_lockout_seconds(event),
    )
