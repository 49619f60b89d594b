"""Creating, listing, rotating and deleting webhook endpoints (API and admin)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import DomainError, NotFound
from vouchers.webhooks.events import EVENT_TYPES, EVENT_TYPES_BY_OWNER
from vouchers.webhooks.models import WebhookEndpoint
from vouchers.webhooks.services import addresses, secrets
from vouchers.webhooks.services.outbox import forget_subscriptions


class InvalidEndpoint(DomainError):
    """400 `invalid_request`: invalid webhook endpoint."""


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once, never stored in clear


def validate_events(events: list[str], *, owner_kind: str | None = None) -> list[str]:
    """Known event types, deduplicated in their catalogue order. Raises InvalidEndpoint.

    With `owner_kind` ("storefront" or "partner"), also refuses an event that owner
    never receives (a partner's endpoint and `issuance.issued`, a storefront's and
    `statement.issued`).
    """
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidEndpoint(_("Unknown event types: %(types)s.") % {"types": ", ".join(unknown)}, errors={
            "events": [_("Unknown event type %(type)r.") % {"type": name} for name in unknown]})
    if not events:
        raise InvalidEndpoint(_("Subscribe to at least one event type."),
                              errors={"events": [_("Subscribe to at least one event type.")]})
    if owner_kind is not None:
        foreign = [name for name in EVENT_TYPES if name in set(events) - EVENT_TYPES_BY_OWNER[owner_kind]]
        if foreign:
            message = _("A %(owner)s's endpoint does not receive: %(types)s.") % {
                "owner": owner_kind, "types": ", ".join(foreign)}
            raise InvalidEndpoint(message, errors={"events": [message]})
    return [name for name in EVENT_TYPES if name in set(events)]


def validate_url(url: str) -> str:
    """Raises InvalidEndpoint when the URL is not https or not public (see addresses)."""
    try:
        addresses.check_url(url)
    except addresses.UnsafeEndpointURL as exc:
        raise InvalidEndpoint(str(exc), errors={"url": [str(exc)]}) from None
    return url


def _forget_now_and_after_commit() -> None:
    """Clear this process's subscription cache now, and again once the change is visible."""
    forget_subscriptions()
    transaction.on_commit(forget_subscriptions)


def seal_into(endpoint: WebhookEndpoint, secret: str) -> None:
    endpoint.secret_ciphertext, endpoint.secret_nonce, endpoint.secret_key_id = secrets.seal_secret(
        secret, endpoint_id=endpoint.pk
    )


@transaction.atomic
def create_endpoint(
    *, url: str, events: list[str], storefront=None, partner_id: int | None = None, enabled: bool = True,
    description: str = "",
) -> CreatedEndpoint:
    """An endpoint of a storefront or a partner, with a fresh secret returned once.

    Raises InvalidEndpoint (unknown events or events the owner never receives, a URL
    that is not https or not public).
    """
    events = validate_events(events, owner_kind="storefront" if storefront is not None else "partner")
    validate_url(url)
    endpoint = WebhookEndpoint(
        storefront=storefront, merchant_id=storefront.merchant_id if storefront is not None else None,
        partner_id=partner_id, url=url, events=events, enabled=enabled, description=description,
    )
    secret = secrets.new_secret()
    seal_into(endpoint, secret)
    endpoint.save(force_insert=True)
    _forget_now_and_after_commit()
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


@transaction.atomic
def rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret; the old one keeps signing (a second v1) for WEBHOOK_SECRET_OVERLAP_SECONDS."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
    endpoint.previous_secret_nonce = endpoint.secret_nonce
    endpoint.previous_secret_key_id = endpoint.secret_key_id
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(
        seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS
    )
    secret = secrets.new_secret()
    seal_into(endpoint, secret)
    endpoint.save()
    return secret


def owned_endpoints(*, storefront_id: int | None = None, partner_id: int | None = None):
    if storefront_id is not None:
        return WebhookEndpoint.objects.filter(storefront_id=storefront_id)
    if partner_id is not None:
        return WebhookEndpoint.objects.filter(partner_id=partner_id)
    return WebhookEndpoint.objects.none()


@transaction.atomic
def update_endpoint(
    *, endpoint_id, storefront_id: int | None = None, partner_id: int | None = None, url: str | None = None,
    events: list[str] | None = None, enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change one of the caller's endpoints (URL, events, enabled); what is None stays.

    Raises NotFound (also another's), InvalidEndpoint (as on creation).
    """
    endpoint = owned_endpoints(storefront_id=storefront_id, partner_id=partner_id).select_for_update().filter(
        pk=endpoint_id
    ).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    if url is not None:
        endpoint.url = validate_url(url)
    if events is not None:
        owner_kind = "storefront" if endpoint.storefront_id else "partner"
        endpoint.events = validate_events(events, owner_kind=owner_kind)
    if enabled is not None:
        endpoint.enabled = enabled
    endpoint.save(update_fields=["url", "events", "enabled", "updated_at"])
    _forget_now_and_after_commit()
    return endpoint


@transaction.atomic
def delete_endpoint(*, endpoint_id, storefront_id: int | None = None, partner_id: int | None = None) -> None:
    """Delete one of the caller's endpoints with its delivery log. Raises NotFound (also another's)."""
    deleted, _ = owned_endpoints(storefront_id=storefront_id, partner_id=partner_id).filter(
        pk=endpoint_id
    ).delete()
    if not deleted:
        raise NotFound("No such webhook endpoint.")
    _forget_now_and_after_commit()
