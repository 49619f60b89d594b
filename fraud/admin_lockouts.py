"""The fraud admin's "Lift lockout" page: end a lockout early, with a reason, audited.

Shown on a lockout event's page while the lockout it recorded is still running. Needs
the "Can change fraud event" permission (fraud.change_fraudevent); the event itself is
never edited. The service has the audit entry written; this view only asks and reports.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from config.admin_confirm import ObjectConfirmView
from config.admin_console import render_page
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


class LiftLockoutPage(ObjectConfirmView):
    """Ask for the reason, then lift the lockout the event recorded."""

    def permitted(self) -> bool:
        return has_lift_permission(self.request)

    def event_url(self) -> str:
        return reverse("admin:fraud_fraudevent_change", args=[quote(self.obj.pk)])

    def make_form(self, data):
        return LiftLockoutForm(data)

    def apply(self, form) -> HttpResponse | None:
        try:
            scope = lift_lockout(event=self.obj, user=self.request.user, reason=form.cleaned_data["reason"])
        except (DomainError, LockoutReasonRequired, RiskCheckUnavailable) as exc:
            form.add_error(None, getattr(exc, "detail", str(exc)))
            return None
        messages.success(self.request, _("The %(p0)s lockout of event %(p1)s was lifted.") % {
            "p0": scope.name, "p1": self.obj.pk})
        return HttpResponseRedirect(self.event_url())

    def ask(self, form) -> HttpResponse:
        event = self.obj
        return render_page(
            self.model_admin, self.request, "admin/fraud/fraudevent/lift_lockout.html",
            title=_("Lift the lockout of event %(p0)s") % {
                "p0": event.pk}, form=form, event=event, event_url=self.event_url(),
            remaining=active_lockout_seconds(event),
        )


def lift_lockout_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    return LiftLockoutPage.view(model_admin, request, object_id)
