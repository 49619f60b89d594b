"""Translated names of the models and fields of the settlement, fraud, audit, webhook and ops apps.

Those apps name their models and fields in English and without gettext (their
migrations hold the names as they are). The console translates them here instead:
`apply()`, run once when the apps are ready, replaces each English name, help text and
choice label listed below by its lazily translated self, so the admin shows it in the
reader's language. Nothing changes in a model's definition or its migrations (Django
keeps the name given in the source for those). A name that is not listed here stays
as it is; `tests/i18n` checks that every name of these apps is listed.
"""

from __future__ import annotations

from django.apps import apps
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy, gettext_noop

APPS = ("webhooks", "partners", "audit", "fraud", "ops")

APP_NAMES = (
    gettext_noop('Webhooks'),
    gettext_noop('Partners and settlement'),
    gettext_noop('Audit log'),
    gettext_noop('Fraud checks'),
    gettext_noop('Operations: health, metrics, invariants'),
)

NAMES = (
    gettext_noop('webhook endpoint'),
    gettext_noop('id'),
    gettext_noop('merchant'),
    gettext_noop('storefront'),
    gettext_noop('partner'),
    gettext_noop('url'),
    gettext_noop('events'),
    gettext_noop('enabled'),
    gettext_noop('description'),
    gettext_noop('secret ciphertext'),
    gettext_noop('secret nonce'),
    gettext_noop('secret key id'),
    gettext_noop('previous secret ciphertext'),
    gettext_noop('previous secret nonce'),
    gettext_noop('previous secret key id'),
    gettext_noop('previous secret expires at'),
    gettext_noop('created at'),
    gettext_noop('updated at'),
    gettext_noop('webhook event'),
    gettext_noop('type'),
    gettext_noop('payload'),
    gettext_noop('ordering key'),
    gettext_noop('webhook delivery'),
    gettext_noop('webhook deliveries'),
    gettext_noop('ID'),
    gettext_noop('event'),
    gettext_noop('endpoint'),
    gettext_noop('status'),
    gettext_noop('attempts'),
    gettext_noop('next attempt at'),
    gettext_noop('retry until'),
    gettext_noop('lease until'),
    gettext_noop('last attempt at'),
    gettext_noop('last status code'),
    gettext_noop('last error'),
    gettext_noop('delivered at'),
    gettext_noop('name'),
    gettext_noop('slug'),
    gettext_noop('contact email'),
    gettext_noop('partner API key'),
    gettext_noop('partner API keys'),
    gettext_noop('prefix'),
    gettext_noop('hashed key'),
    gettext_noop('created'),
    gettext_noop('revoked'),
    gettext_noop('agreement'),
    gettext_noop('currency'),
    gettext_noop('period'),
    gettext_noop('timezone'),
    gettext_noop('dispute window days'),
    gettext_noop('agreement version'),
    gettext_noop('number'),
    gettext_noop('basis'),
    gettext_noop('unit amount minor'),
    gettext_noop('rate bps'),
    gettext_noop('direction'),
    gettext_noop('valid from'),
    gettext_noop('valid until'),
    gettext_noop('products'),
    gettext_noop('ledger head'),
    gettext_noop('seq'),
    gettext_noop('hash'),
    gettext_noop('ledger entry'),
    gettext_noop('ledger entries'),
    gettext_noop('kind'),
    gettext_noop('amount minor'),
    gettext_noop('source type'),
    gettext_noop('source id'),
    gettext_noop('source key'),
    gettext_noop('sku'),
    gettext_noop('code last4'),
    gettext_noop('reverses'),
    gettext_noop('refers to statement'),
    gettext_noop('memo'),
    gettext_noop('actor'),
    gettext_noop('occurred at'),
    gettext_noop('recorded at'),
    gettext_noop('prev hash'),
    gettext_noop('statement'),
    gettext_noop('period start'),
    gettext_noop('period end'),
    gettext_noop('opening minor'),
    gettext_noop('total minor'),
    gettext_noop('closing minor'),
    gettext_noop('line count'),
    gettext_noop('issued at'),
    gettext_noop('dispute deadline'),
    gettext_noop('previous'),
    gettext_noop('previous sha256'),
    gettext_noop('content sha256'),
    gettext_noop('document'),
    gettext_noop('signature'),
    gettext_noop('kid'),
    gettext_noop('statement line'),
    gettext_noop('entry'),
    gettext_noop('line no'),
    gettext_noop('original statement'),
    gettext_noop('dispute'),
    gettext_noop('reason'),
    gettext_noop('lines'),
    gettext_noop('claimed amount minor'),
    gettext_noop('resolution reason'),
    gettext_noop('adjustment'),
    gettext_noop('resolved at'),
    gettext_noop('statement event'),
    gettext_noop('action'),
    gettext_noop('details'),
    gettext_noop('signing key'),
    gettext_noop('public key'),
    gettext_noop('first used at'),
    gettext_noop('audit entry'),
    gettext_noop('audit log'),
    gettext_noop('chain'),
    gettext_noop('actor name'),
    gettext_noop('user'),
    gettext_noop('target type'),
    gettext_noop('target id'),
    gettext_noop('target label'),
    gettext_noop('audit chain head'),
    gettext_noop('fraud profile'),
    gettext_noop('fraud rule'),
    gettext_noop('order'),
    gettext_noop('limit'),
    gettext_noop('window seconds'),
    gettext_noop('count units'),
    gettext_noop('per product'),
    gettext_noop('product'),
    gettext_noop('new customer orders'),
    gettext_noop('on issue'),
    gettext_noop('on redeem'),
    gettext_noop('on check'),
    gettext_noop('blocklist entry'),
    gettext_noop('blocklist entries'),
    gettext_noop('value'),
    gettext_noop('note'),
    gettext_noop('expires at'),
    gettext_noop('allow-list entry'),
    gettext_noop('allow-list entries'),
    gettext_noop('risk assessment'),
    gettext_noop('outcome'),
    gettext_noop('score'),
    gettext_noop('reasons'),
    gettext_noop('api key id'),
    gettext_noop('quantity'),
    gettext_noop('customer'),
    gettext_noop('ip'),
    gettext_noop('ip group'),
    gettext_noop('device id'),
    gettext_noop('email'),
    gettext_noop('issuance'),
    gettext_noop('redemption'),
    gettext_noop('fraud event'),
    gettext_noop('severity'),
    gettext_noop('decision'),
    gettext_noop('context'),
    gettext_noop('assessment'),
    gettext_noop('batch'),
    gettext_noop('alert'),
    gettext_noop('alerted at'),
    # plurals Django derives ("agreement" + "s") and the API key package's names
    gettext_noop('agreement versions'),
    gettext_noop('agreements'),
    gettext_noop('audit chain heads'),
    gettext_noop('disputes'),
    gettext_noop('fraud events'),
    gettext_noop('fraud profiles'),
    gettext_noop('fraud rules'),
    gettext_noop('ledger heads'),
    gettext_noop('partners'),
    gettext_noop('risk assessments'),
    gettext_noop('signing keys'),
    gettext_noop('statement events'),
    gettext_noop('statement lines'),
    gettext_noop('statements'),
    gettext_noop('webhook endpoints'),
    gettext_noop('webhook events'),
    gettext_noop('Expires'),
)

HELP_TEXTS = (
    gettext_noop('Event types this endpoint receives.'),
    gettext_noop('ISO 4217 settlement currency, e.g. USD, JPY.'),
    gettext_noop('IANA time zone of the period boundaries, e.g. Europe/Berlin.'),
    gettext_noop('Fixed price per event in minor units (cents, yen, fils).'),
    gettext_noop("Price as basis points of the product's face value (100 = 1%)."),
    gettext_noop('Per-partner sequence number, from 1.'),
    gettext_noop('The statement an adjustment or payment concerns.'),
    gettext_noop('The canonical JSON (RFC 8785) that was signed.'),
    gettext_noop('Compact JWS with detached payload (EdDSA).'),
    gettext_noop('Set on a line that corrects an earlier statement.'),
    gettext_noop('user:<id>, partner:<id> or system.'),
    gettext_noop('Ed25519 public key, base64url (JWK `x`).'),
    gettext_noop('user:<id> or system.'),
    gettext_noop('What a match decides. Only allow-list rules may allow.'),
    gettext_noop('Order within its action group (allow, then deny, then review).'),
    gettext_noop(
        "Most allowed: orders (or units) per window, distinct customers per window, or quantity per order. "
        "The next one matches."
    ),
    gettext_noop('Length of the sliding window (velocity and farming rules).'),
    gettext_noop('Velocity: count units (quantity) instead of orders.'),
    gettext_noop('Velocity: count each product separately.'),
    gettext_noop('Apply to this product only (empty: all products).'),
    gettext_noop('First orders: a customer with fewer issued orders than this is new.'),
    gettext_noop('Evaluate on issuance.'),
    gettext_noop('Evaluate on redemption.'),
    gettext_noop('Evaluate on code checks.'),
    gettext_noop('Empty: never expires.'),
    gettext_noop('Stable reason codes, decisive first.'),
    gettext_noop('Per matched or counted rule: rule id, count, limit.'),
    gettext_noop('The IP, or its /64 for IPv6.'),
    gettext_noop('The batch a leak points at.'),
    # the API key package's help texts
    gettext_noop('A free-form name for the API key. Need not be unique. 50 characters max.'),
    gettext_noop('If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)'),
    gettext_noop('Once API key expires, clients cannot use it anymore.'),
)

CHOICES = (
    gettext_noop('Pending'),
    gettext_noop('Succeeded'),
    gettext_noop('Failed'),
    gettext_noop('Weekly'),
    gettext_noop('Monthly'),
    gettext_noop('Issued'),
    gettext_noop('Redeemed'),
    gettext_noop('Merchant Pays Partner'),
    gettext_noop('Partner Pays Merchant'),
    gettext_noop('Accrual'),
    gettext_noop('Reversal'),
    gettext_noop('Adjustment'),
    gettext_noop('Payment'),
    gettext_noop('Open'),
    gettext_noop('Accepted'),
    gettext_noop('Rejected'),
    gettext_noop('Allow-list match'),
    gettext_noop('Blocklist match'),
    gettext_noop('Velocity per customer'),
    gettext_noop('Velocity per IP (IPv6 by /64)'),
    gettext_noop('Velocity per device'),
    gettext_noop('Velocity per e-mail'),
    gettext_noop('Quantity cap per order'),
    gettext_noop("Limit on a customer's first orders"),
    gettext_noop('Distinct customers per device'),
    gettext_noop('Distinct customers per IP'),
    gettext_noop('Allow'),
    gettext_noop('Review'),
    gettext_noop('Deny'),
    gettext_noop('Customer'),
    gettext_noop('Email'),
    gettext_noop('E-mail domain (and its subdomains)'),
    gettext_noop('Device'),
    gettext_noop('IP address'),
    gettext_noop('IP range (CIDR)'),
    gettext_noop('issue'),
    gettext_noop('redeem'),
    gettext_noop('check'),
    gettext_noop('Info'),
    gettext_noop('Low'),
    gettext_noop('High'),
    gettext_noop('Critical'),
    gettext_noop('Denied or held by a rule'),
    gettext_noop('Lockout after failed attempts'),
    gettext_noop('Failure rate spike (distributed guessing)'),
    gettext_noop('Never-issued code used (possible leak)'),
    gettext_noop('Canary code used (stock leaked)'),
    gettext_noop('Recorded only'),
    gettext_noop('Lockout'),
    gettext_noop('Answered as an unknown code'),
    gettext_noop('Below the alert severity'),
    gettext_noop('Sent'),
    gettext_noop('Covered by an earlier alert'),
)


def _translated(value, known: frozenset[str]):
    """`value` lazily translated if its English text is listed, else `value` unchanged."""
    if value and not isinstance(value, Promise | str):
        return value
    with translation.override(None):
        english = str(value) if value else ""
    return gettext_lazy(english) if english in known else value


def _names_of(label: str):
    """(English text, kind) of every name, help text and choice label of an app's models."""
    config = apps.get_app_config(label)
    yield config.verbose_name, "name"
    for model in config.get_models():
        yield model._meta.verbose_name, "name"
        yield model._meta.verbose_name_plural, "name"
        for field in model._meta.get_fields():
            if field.concrete or field.many_to_many:
                yield field.verbose_name, "name"
                yield field.help_text, "help"
                for _value, choice in getattr(field, "choices", None) or ():
                    yield choice, "choice"


def untranslated() -> list[str]:
    """Names, help texts and choice labels of APPS without an entry here (for the tests)."""
    known = {"name": set(APP_NAMES + NAMES), "help": set(HELP_TEXTS), "choice": set(CHOICES)}
    with translation.override(None):
        texts = {(str(value), kind) for label in APPS for value, kind in _names_of(label) if value}
    return sorted(text for text, kind in texts if text not in known[kind])


def apply() -> None:
    """Make every listed name, help text and choice label of APPS lazily translated (idempotent)."""
    names, helps, choices = frozenset(APP_NAMES + NAMES), frozenset(HELP_TEXTS), frozenset(CHOICES)
    for label in APPS:
        config = apps.get_app_config(label)
        config.verbose_name = _translated(config.verbose_name, names)
        for model in config.get_models():
            opts = model._meta
            opts.verbose_name = _translated(opts.verbose_name, names)
            opts.verbose_name_plural = _translated(opts.verbose_name_plural, names)
            for field in opts.get_fields():
                if not (field.concrete or field.many_to_many):
                    continue
                field.verbose_name = _translated(field.verbose_name, names)
                field.help_text = _translated(field.help_text, helps)
                if getattr(field, "choices", None):
                    field.choices = [(value, _translated(choice, choices)) for value, choice in field.choices]
