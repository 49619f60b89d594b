"""Fraud rules, allow- and blocklists, stored decisions and the event log.

No business logic here: evaluation lives in `fraud/services/`. None of these tables
ever holds a plaintext code (a code is named by its id and last 4 characters).
"""

from __future__ import annotations

import ipaddress

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from fraud import subjects


class Outcome(models.TextChoices):
    ALLOW = "allow", _("Allow")
    REVIEW = "review", _("Review")
    DENY = "deny", _("Deny")


class FraudProfile(models.Model):
    """Marks that a merchant's default rules were created (once; deleting rules keeps them deleted)."""

    merchant = models.OneToOneField(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.CASCADE,
        related_name="fraud_profile",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("fraud profile")
        verbose_name_plural = _("fraud profiles")

    def __str__(self) -> str:
        return f"Fraud profile of {self.merchant}"


class FraudRule(models.Model):
    """One rule of a merchant. Rules run allow first, then deny, then review; then by `order`.

    An allow or deny match decides at once; review matches are all collected.
    """

    class Kind(models.TextChoices):
        ALLOWLIST = "allowlist", _("Allow-list match")
        BLOCKLIST = "blocklist", _("Blocklist match")
        VELOCITY_CUSTOMER = "velocity_customer", _("Velocity per customer")
        VELOCITY_IP = "velocity_ip", _("Velocity per IP (IPv6 by /64)")
        VELOCITY_DEVICE = "velocity_device", _("Velocity per device")
        VELOCITY_EMAIL = "velocity_email", _("Velocity per e-mail")
        QUANTITY_CAP = "quantity_cap", _("Quantity cap per order")
        FIRST_ORDERS = "first_orders", _("Limit on a customer's first orders")
        FARMING_DEVICE = "farming_device", _("Distinct customers per device")
        FARMING_IP = "farming_ip", _("Distinct customers per IP")

    VELOCITY_KINDS = frozenset({
        Kind.VELOCITY_CUSTOMER, Kind.VELOCITY_IP, Kind.VELOCITY_DEVICE, Kind.VELOCITY_EMAIL,
    })
    FARMING_KINDS = frozenset({Kind.FARMING_DEVICE, Kind.FARMING_IP})
    WINDOWED_KINDS = VELOCITY_KINDS | FARMING_KINDS
    LIMITED_KINDS = WINDOWED_KINDS | {Kind.QUANTITY_CAP, Kind.FIRST_ORDERS}

    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.CASCADE, related_name="fraud_rules",
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    action = models.CharField(
        _("action"), max_length=8, choices=Outcome.choices, default=Outcome.DENY,
        help_text=_("What a match decides. Only allow-list rules may allow."),
    )
    order = models.PositiveSmallIntegerField(
        _("order"), default=100, help_text=_("Order within its action group (allow, then deny, then review).")
    )
    limit = models.PositiveIntegerField(
        _("limit"), null=True, blank=True,
        help_text=_(
            "Most allowed: orders (or units) per window, distinct customers per window, "
            "or quantity per order. The next one matches."
        ),
    )
    window_seconds = models.PositiveIntegerField(
        _("window seconds"), null=True, blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(30 * 24 * 3600)],
        help_text=_("Length of the sliding window (velocity and farming rules)."),
    )
    count_units = models.BooleanField(
        _("count units"), default=False, help_text=_("Velocity: count units (quantity) instead of orders.")
    )
    per_product = models.BooleanField(
        _("per product"), default=False, help_text=_("Velocity: count each product separately.")
    )
    product = models.ForeignKey(
        "vouchers.Product", verbose_name=_("product"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="+",
        help_text=_("Apply to this product only (empty: all products)."),
    )
    new_customer_orders = models.PositiveSmallIntegerField(
        _("new customer orders"), null=True, blank=True,
        help_text=_("First orders: a customer with fewer issued orders than this is new."),
    )
    on_issue = models.BooleanField(_("on issue"), default=True, help_text=_("Evaluate on issuance."))
    on_redeem = models.BooleanField(_("on redeem"), default=False, help_text=_("Evaluate on redemption."))
    on_check = models.BooleanField(_("on check"), default=False, help_text=_("Evaluate on code checks."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("fraud rule")
        verbose_name_plural = _("fraud rules")
        ordering = ["merchant", "order", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "name"], name="fraudrule_name_unique_per_merchant"),
            models.CheckConstraint(
                condition=Q(action__in=["allow", "review", "deny"]), name="fraudrule_action_valid"
            ),
            # Only an allow-list rule may allow, and it may do nothing else.
            models.CheckConstraint(
                condition=(Q(kind="allowlist") & Q(action="allow"))
                | (~Q(kind="allowlist") & ~Q(action="allow")),
                name="fraudrule_allow_only_allowlist",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.action})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind == self.Kind.ALLOWLIST and self.action != Outcome.ALLOW:
            errors["action"] = "An allow-list rule always allows."
        if self.kind != self.Kind.ALLOWLIST and self.action == Outcome.ALLOW:
            errors["action"] = "Only an allow-list rule may allow."
        if self.kind in self.LIMITED_KINDS and self.limit is None:
            errors["limit"] = "This kind of rule needs a limit."
        if self.kind in self.WINDOWED_KINDS and not self.window_seconds:
            errors["window_seconds"] = "This kind of rule needs a window."
        if self.kind == self.Kind.FIRST_ORDERS and not self.new_customer_orders:
            errors["new_customer_orders"] = "Say how many first orders are limited."
        if not (self.on_issue or self.on_redeem or self.on_check):
            errors["on_issue"] = "Evaluate the rule on at least one action."
        if self.product is not None and self.merchant_id and self.product.merchant_id != self.merchant_id:
            errors["product"] = "The product belongs to another merchant."
        if errors:
            raise ValidationError(errors)

    def applies_to(self, action: str) -> bool:
        return {"issue": self.on_issue, "redeem": self.on_redeem, "check": self.on_check}[action]


class ListKind(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    EMAIL = "email", _("Email")
    EMAIL_DOMAIN = "email_domain", _("E-mail domain (and its subdomains)")
    DEVICE = "device", _("Device")
    IP = "ip", _("IP address")
    CIDR = "cidr", _("IP range (CIDR)")


def normalise_list_value(kind: str, value: str) -> str:
    """The stored form of an allow/blocklist value. Raises ValidationError."""
    value = value.strip()
    if not value:
        raise ValidationError("A value is required.")
    if kind == ListKind.IP:
        if subjects.parse_ip(value) is None:
            raise ValidationError(f"{value!r} is not an IP address.")
        return subjects.canonical_ip(value)
    if kind == ListKind.CIDR:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValidationError(f"{value!r} is not an IP range like 203.0.113.0/24.") from None
    if kind == ListKind.EMAIL:
        if "@" not in value:
            raise ValidationError(f"{value!r} is not an e-mail address.")
        return subjects.email_address(value)
    if kind == ListKind.EMAIL_DOMAIN:
        domain = value.lower().lstrip("@").rstrip(".")
        if "@" in domain or "." not in domain:
            raise ValidationError(f"{value!r} is not a domain like example.com.")
        return domain
    return value


class ListEntry(models.Model):
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.CASCADE, related_name="+",
    )
    kind = models.CharField(_("kind"), max_length=16, choices=ListKind.choices)
    value = models.CharField(_("value"), max_length=255)
    note = models.CharField(_("note"), max_length=255, blank=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty: never expires."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["merchant", "kind", "value"]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"

    def clean(self) -> None:
        try:
            self.value = normalise_list_value(self.kind, self.value)
        except ValidationError as exc:
            raise ValidationError({"value": exc.messages}) from None


class BlocklistEntry(ListEntry):
    class Meta(ListEntry.Meta):
        verbose_name = _("blocklist entry")
        verbose_name_plural = _("blocklist entries")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "kind", "value"], name="blocklist_unique"),
        ]
        indexes = [models.Index(fields=["merchant", "kind", "value"], name="blocklist_lookup_idx")]


class AllowlistEntry(ListEntry):
    class Meta(ListEntry.Meta):
        verbose_name = _("allow-list entry")
        verbose_name_plural = _("allow-list entries")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "kind", "value"], name="allowlist_unique"),
        ]
        indexes = [models.Index(fields=["merchant", "kind", "value"], name="allowlist_lookup_idx")]


class RiskAssessment(models.Model):
    """One decision on one issuance, redemption or check, with its reasons.

    Linked to the issuance or redemption it judged once that exists (a held issuance
    is reviewed from here). Never holds a code.
    """

    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+",
    )
    action = models.CharField(
        _("action"), max_length=8,
        choices=[("issue", _("issue")), ("redeem", _("redeem")), ("check", _("check"))],
    )
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices)
    score = models.PositiveSmallIntegerField(_("score"), validators=[MaxValueValidator(100)])
    reasons = models.JSONField(
        _("reasons"), default=list, blank=True, help_text=_("Stable reason codes, decisive first."),
    )
    details = models.JSONField(
        _("details"), default=list, blank=True,
        help_text=_("Per matched or counted rule: rule id, count, limit."),
    )
    api_key_id = models.CharField(_("api key id"), max_length=150, blank=True)
    storefront = models.ForeignKey(
        "vouchers.Storefront", verbose_name=_("storefront"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    partner = models.ForeignKey(
        "partners.Partner", verbose_name=_("partner"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    product = models.ForeignKey(
        "vouchers.Product", verbose_name=_("product"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    quantity = models.PositiveSmallIntegerField(_("quantity"), default=1)
    customer = models.CharField(_("customer"), max_length=128, blank=True)
    ip = models.CharField(_("ip"), max_length=64, blank=True)
    ip_group = models.CharField(
        _("ip group"), max_length=64, blank=True, help_text=_("The IP, or its /64 for IPv6."),
    )
    device_id = models.CharField(_("device id"), max_length=128, blank=True)
    email = models.CharField(_("email"), max_length=254, blank=True)
    issuance = models.ForeignKey(
        "vouchers.Issuance", verbose_name=_("issuance"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="risk_assessments",
    )
    redemption = models.ForeignKey(
        "vouchers.Redemption", verbose_name=_("redemption"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="risk_assessments",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("risk assessment")
        verbose_name_plural = _("risk assessments")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["allow", "review", "deny"]), name="riskassessment_outcome_valid"
            ),
            models.CheckConstraint(condition=Q(score__lte=100), name="riskassessment_score_0_100"),
            models.CheckConstraint(
                condition=Q(issuance__isnull=True) | Q(redemption__isnull=True),
                name="riskassessment_judges_one_thing",
            ),
        ]
        indexes = [
            models.Index(fields=["merchant", "outcome", "created_at"], name="riskassessment_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.outcome} ({self.score})"


class FraudEvent(models.Model):
    """Something the fraud checks saw: a refusal, a lockout, a leak, a guessing wave.

    Context holds who and where (customer, ip, device, e-mail, ids, a code's id and
    last 4 characters), never a plaintext code. `alerted_at` makes alerting idempotent.
    """

    class Severity(models.TextChoices):
        INFO = "info", _("Info")
        LOW = "low", _("Low")
        HIGH = "high", _("High")
        CRITICAL = "critical", _("Critical")

    class Kind(models.TextChoices):
        RISK_DECISION = "risk_decision", _("Denied or held by a rule")
        LOCKOUT = "lockout", _("Lockout after failed attempts")
        DISTRIBUTED_GUESSING = "distributed_guessing", _("Failure rate spike (distributed guessing)")
        UNISSUED_CODE_USE = "unissued_code_use", _("Never-issued code used (possible leak)")
        CANARY_USE = "canary_use", _("Canary code used (stock leaked)")

    class Decision(models.TextChoices):
        NONE = "none", _("Recorded only")
        REVIEW = "review", _("Review")
        DENY = "deny", _("Deny")
        LOCKOUT = "lockout", _("Lockout")
        REFUSED = "refused", _("Answered as an unknown code")

    class Alert(models.TextChoices):
        NOT_NEEDED = "not_needed", _("Below the alert severity")
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        THROTTLED = "throttled", _("Covered by an earlier alert")

    SEVERITY_RANK = {"info": 0, "low": 1, "high": 2, "critical": 3}

    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    decision = models.CharField(_("decision"), max_length=8, choices=Decision.choices, default=Decision.NONE)
    context = models.JSONField(_("context"), default=dict, blank=True)
    assessment = models.ForeignKey(
        RiskAssessment, verbose_name=_("assessment"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="events",
    )
    batch = models.ForeignKey(
        "vouchers.Batch", verbose_name=_("batch"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The batch a leak points at."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    alert = models.CharField(_("alert"), max_length=12, choices=Alert.choices, default=Alert.NOT_NEEDED)
    alerted_at = models.DateTimeField(_("alerted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("fraud event")
        verbose_name_plural = _("fraud events")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__in=["info", "low", "high", "critical"]),
                name="fraudevent_severity_valid",
            ),
            models.CheckConstraint(
                condition=~Q(alert="sent") | Q(alerted_at__isnull=False), name="fraudevent_sent_has_time"
            ),
        ]
        indexes = [
            models.Index(fields=["merchant", "severity", "created_at"], name="fraudevent_severity_idx"),
            models.Index(fields=["merchant", "kind", "created_at"], name="fraudevent_kind_idx"),
            models.Index(fields=["alert", "created_at"], condition=Q(alert="pending"),
                         name="fraudevent_alert_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.kind} #{self.pk}"
