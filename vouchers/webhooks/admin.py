"""Webhook endpoints and the delivery log in the admin, scoped to the staff member's merchant.

An endpoint is created through the same service as the API (URL rules, sealed
secret); its secret is rendered into the response to the POST only. Deliveries are
records: read, and sent again with "redeliver".

A merchant's staff manage their storefronts' endpoints. A partner's endpoints (a
partner acts across merchants) are managed by a superuser, like its API keys, or by
the partner itself through the API.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.admin_console import MerchantScopedAdmin, TenantModelForm, render_page
from config.tenancy import is_unscoped, scoped_choices
from partners.models import Partner
from vouchers.models import Storefront
from vouchers.webhooks.events import EVENT_CHOICES
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint
from vouchers.webhooks.services import delivery, endpoints
from vouchers.webhooks.services.outbox import forget_subscriptions


class EndpointForm(TenantModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", label=gettext_lazy("URL"))
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple,
                                       label=gettext_lazy("Events"))

    class Meta:
        model = WebhookEndpoint
        fields = ["storefront", "partner", "url", "events", "enabled", "description"]

    def clean_url(self):
        try:
            return endpoints.validate_url(self.cleaned_data["url"])
        except endpoints.InvalidEndpoint as exc:
            raise forms.ValidationError(exc.detail) from None

    def clean_events(self):
        try:
            return endpoints.validate_events(self.cleaned_data["events"])
        except endpoints.InvalidEndpoint as exc:
            raise forms.ValidationError(exc.detail) from None

    def clean(self):
        cleaned = super().clean()
        if not self.instance._state.adding:  # the owner of a saved endpoint is read-only
            owner_kind = "storefront" if self.instance.storefront_id else "partner"
        else:
            storefront, partner = cleaned.get("storefront"), cleaned.get("partner")
            if bool(storefront) == bool(partner):
                self.add_error("storefront", _("Choose whose events this endpoint receives: one storefront "
                                               "or one partner."))
                return cleaned
            owner_kind = "storefront" if storefront else "partner"
        if cleaned.get("events"):
            try:
                endpoints.validate_events(cleaned["events"], owner_kind=owner_kind)
            except endpoints.InvalidEndpoint as exc:
                self.add_error("events", exc.detail)
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(MerchantScopedAdmin):
    merchant_paths = ("merchant",)
    form = EndpointForm
    list_display = ("url", "storefront", "partner", "event_list", "enabled", "created_at")
    list_filter = ("enabled",)
    actions = ("rotate_secret",)

    def get_fields(self, request, obj=None):
        partners_too = is_unscoped(request) or (obj is not None and obj.partner_id)
        owners = ["storefront", "partner"] if partners_too else ["storefront"]
        return [*owners, "url", "events", "enabled", "description"]

    def get_readonly_fields(self, request, obj=None):
        return ("storefront", "partner") if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "storefront":
            kwargs["queryset"] = scoped_choices(Storefront, request)
        if db_field.name == "partner":
            kwargs["queryset"] = Partner.objects.all() if is_unscoped(request) else Partner.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=gettext_lazy("events"))
    def event_list(self, obj) -> str:
        return ", ".join(obj.events)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            forget_subscriptions()
            return
        partner = form.cleaned_data.get("partner")
        created = endpoints.create_endpoint(
            url=form.cleaned_data["url"], events=form.cleaned_data["events"],
            storefront=form.cleaned_data.get("storefront"), partner_id=partner.pk if partner else None,
            enabled=form.cleaned_data["enabled"], description=form.cleaned_data.get("description", ""),
        )
        obj.pk = created.endpoint.pk
        obj._state.adding = False
        request._webhook_secret = (created.endpoint, created.secret)

    def save_related(self, request, form, formsets, change):
        """Nothing related to save (and the form's object was saved by the service)."""

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_subscriptions()

    def response_add(self, request, obj, post_url_continue=None):
        endpoint, secret = request._webhook_secret
        return self._secret_page(request, endpoint, secret, rotated=False)

    def _secret_page(self, request, endpoint, secret, *, rotated: bool):
        return render_page(
            self, request, "admin/webhooks/secret_shown_once.html", title=_("Webhook signing secret"),
            endpoint=endpoint, secret=secret, rotated=rotated,
            endpoint_url=reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        )

    @admin.action(description=gettext_lazy("Rotate the signing secret (the old one signs for a day more)"),
                  permissions=["change"])
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Rotate one endpoint at a time."), messages.ERROR)
            return None
        endpoint = queryset.get()
        secret = endpoints.rotate_secret(endpoint=endpoint)
        endpoint.refresh_from_db()
        self.log_change(request, endpoint, _("Rotated the signing secret."))
        return self._secret_page(request, endpoint, secret, rotated=True)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MerchantScopedAdmin):
    """The delivery log. Read only, plus "redeliver"."""

    merchant_paths = ("merchant",)
    list_display = ("event_type", "endpoint", "status", "attempts", "last_status_code", "last_attempt_at",
                    "next_attempt_at", "created_at")
    list_filter = ("status", "event__type")
    list_select_related = ("event", "endpoint")
    search_fields = ("=event__id",)
    actions = ("redeliver",)
    fields = ("event_id_shown", "event_type", "endpoint", "status", "attempts", "last_status_code",
              "last_error", "last_attempt_at", "next_attempt_at", "retry_until", "delivered_at", "created_at",
              "payload")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("event"), ordering="event__type")
    def event_type(self, obj) -> str:
        return obj.event.type

    @admin.display(description="Webhook-Id")
    def event_id_shown(self, obj) -> str:
        return str(obj.event_id)

    @admin.display(description=gettext_lazy("payload (as sent)"))
    def payload(self, obj) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.event.payload, indent=2, sort_keys=True))

    @admin.action(description=gettext_lazy("Redeliver the selected deliveries now"), permissions=["change"])
    def redeliver(self, request, queryset):
        count = delivery.redeliver(list(queryset.values_list("pk", flat=True)))
        queued = _("%(count)d deliveries queued again.") % {"count": count}
        self.message_user(request, queued, messages.SUCCESS)
