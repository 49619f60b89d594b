"""No plaintext code in any fraud record, alert mail or code event."""

from __future__ import annotations

from django.core import serializers

from fraud.models import FraudEvent, RiskAssessment
from fraud.services.assessment import assess
from fraud.services.leaks import report_canary_use, report_unissued_code_use
from fraud.services.lockouts import record_failed_attempt
from vouchers import codeformat
from vouchers.crypto import decrypt_code
from vouchers.models import Code, CodeEvent
from vouchers.selectors import find_code
from vouchers.services.canaries import plant_canaries
from vouchers.services.risk import code_facts


def test_no_fraud_row_or_mail_contains_a_plaintext_code(generated_batch, staff_user, make_ctx, settings,
                                                         eager_alerts, mailoutbox, clock):
    # given canaries (plaintexts kept here) and the batch's own codes decrypted in the test
    settings.FRAUD_ALERT_THROTTLE_SECONDS = 1  # one mail per use, so every mail is checked
    canaries = plant_canaries(batch=generated_batch, count=3, actor_user=staff_user)
    stock = [decrypt_code(c) for c in Code.objects.filter(batch=generated_batch, is_canary=False)]
    secrets = canaries + stock
    forms = {f for s in secrets for f in (s, *codeformat.lookup_forms(s))}
    assert len(secrets) == 8
    # when every fraud path runs with them
    with eager_alerts():
        for i, plaintext in enumerate(canaries):
            row = find_code(plaintext)
            ctx = make_ctx(action="redeem", customer=f"c{i}", ip="192.0.2.1", device_id="d")
            report_canary_use(ctx=ctx, code=code_facts(row))
            clock.advance(1)
        for plaintext in stock:
            row = find_code(plaintext)
            ctx = make_ctx(action="check", customer="c", email="x@example.com")
            report_unissued_code_use(ctx=ctx, code=code_facts(row))
            record_failed_attempt(ctx=ctx, reason="unknown_code")
            clock.advance(1)
        assess(ctx=make_ctx(quantity=50, customer="c"))
    # then the fraud tables, the code events and the mails hold none of them
    dumped = serializers.serialize("json", [*FraudEvent.objects.all(), *RiskAssessment.objects.all(),
                                            *CodeEvent.objects.all()])
    texts = [dumped] + [m.subject + m.body for m in mailoutbox]
    assert FraudEvent.objects.filter(kind="canary_use").count() == 3
    assert len(mailoutbox) == 8
    leaked = {f for f in forms for text in texts if f in text}
    assert leaked == set()
