"""manage.py check_invariants: quiet on data the services wrote, loud on data corrupted behind their back."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from tests.factories import StaffFactory
from tests.vouchers.api.conftest import make_shop
from vouchers.models import Batch, Code, CodeEvent, Issuance, Redemption, StockCounter
from vouchers.ops.invariants import run_checks
from vouchers.ops.tasks import check_invariants_daily
from vouchers.services.batch_status import void_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def traded(db):
    """A shop after a day of trade through the API: issued, redeemed, reversed, reserved, cancelled."""
    shop = make_shop(codes=8)
    first = shop.client.issue(shop.product.sku, quantity=2, customer="a").json()
    redeemed = shop.client.redeem(first["codes"][0]["code"]).json()
    assert shop.client.redeem(first["codes"][1]["code"]).status_code == 201
    assert shop.client.reverse(redeemed["id"]).status_code == 200
    held = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 2, "reserve": True})
    assert shop.client.cancel(held.json()["id"]).status_code == 200
    held = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 1, "reserve": True})
    assert shop.client.confirm(held.json()["id"]).status_code == 200
    return shop


def names(violations) -> list[str]:
    return sorted({v.check for v in violations})


def test_data_written_by_the_services_satisfies_every_invariant(traded, capsys):
    batch = traded.product.batches.get()
    staff = StaffFactory(merchant=traded.product.merchant).user
    void_batch(batch=batch, reason="supplier recall", actor_user=staff)
    assert run_checks() == []
    call_command("check_invariants")
    assert capsys.readouterr().out.startswith("All 6 invariant checks hold")


def run_command_expecting_failure(capsys) -> str:
    with pytest.raises(CommandError) as exc:
        call_command("check_invariants")
    assert exc.value.returncode == 1
    return capsys.readouterr().err


def test_a_code_moved_without_its_counter_and_event_is_reported(traded, capsys):
    code = Code.objects.filter(state="available", events__isnull=True).order_by("pk").first()
    Code.objects.filter(pk=code.pk).update(state="void")
    violations = run_checks()
    assert names(violations) == ["events_match_states", "stock_counts"]
    report = run_command_expecting_failure(capsys)
    assert f"[events_match_states] codes out of stock with no event recording it: {code.pk}" in report
    assert f"[stock_counts] batch {code.batch_id}: codes by state" in report


def test_a_counter_off_by_one_is_reported(traded):
    StockCounter.objects.filter(state="available").order_by("pk").update(count=F("count") + 1)
    violations = run_checks()
    batch = traded.product.batches.get()
    assert [str(v) for v in violations if v.check == "stock_counts"][0].startswith(
        f"[stock_counts] batch {batch.pk}: codes by state")
    assert names(violations) == ["stock_counts"]


def test_a_batch_size_that_does_not_add_up_is_reported(traded):
    batch = traded.product.batches.get()
    Batch.objects.filter(pk=batch.pk).update(size=9)
    assert [str(v) for v in run_checks()] == [f"[stock_counts] batch {batch.pk}: 8 codes but size 9"]


def test_an_issuance_holding_fewer_codes_than_asked_is_reported(traded):
    issuance = Issuance.objects.filter(status="issued", quantity=2).get()
    Issuance.objects.filter(pk=issuance.pk).update(quantity=3)
    assert [str(v) for v in run_checks()] == [
        f"[issuance_all_or_nothing] issuance {issuance.pk} (issued) asks 3 and holds 2 codes"]


def test_a_code_issued_to_two_issuances_is_reported(traded):
    code = Code.objects.filter(state="issued").order_by("pk").first()
    other = Issuance.objects.exclude(pk=code.issuance_id).filter(status="issued").first()
    CodeEvent.objects.create(action="issued", actor="system", batch_id=code.batch_id, code=code,
                             issuance=other, from_state="available", to_state="issued")
    assert [str(v) for v in run_checks()] == [
        f"[code_in_one_issuance] codes issued to more than one issuance: {code.pk}"]


def test_a_redeemed_code_without_a_live_redemption_is_reported(traded):
    redemption = Redemption.objects.get(reversed_at__isnull=True)
    Redemption.objects.filter(pk=redemption.pk).update(reversed_at=timezone.now())
    assert [str(v) for v in run_checks()] == [
        f"[one_live_redemption] redeemed codes without a live redemption: {redemption.code_id}"]


def test_a_live_redemption_of_a_code_not_redeemed_is_reported(traded):
    reversed_one = Redemption.objects.get(reversed_at__isnull=False)
    Redemption.objects.filter(pk=reversed_one.pk).update(reversed_at=None)
    assert [str(v) for v in run_checks()] == [
        f"[one_live_redemption] codes with a live redemption that are not redeemed: {reversed_one.code_id}"]


def test_a_state_that_contradicts_the_last_event_is_reported(traded):
    # the counters are moved too, so only the event history disagrees
    code = Code.objects.filter(state="issued").order_by("pk").first()
    Code.objects.filter(pk=code.pk).update(state="redeemed", redeemed_at=timezone.now())
    Redemption.objects.create(code=code, storefront=traded.storefront, redeemed_at=timezone.now())
    counter = StockCounter.objects.filter(batch_id=code.batch_id, state="issued").order_by("pk").first()
    StockCounter.objects.filter(pk=counter.pk).update(count=F("count") - 1)
    StockCounter.objects.create(batch_id=code.batch_id, state="redeemed", shard=99, count=1)
    assert [str(v) for v in run_checks()] == [
        f"[events_match_states] code {code.pk} is redeemed but its last event says issued"]


def test_the_daily_job_mails_the_operators_on_a_violation(traded, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    assert check_invariants_daily() == 0
    assert mail.outbox == []
    Batch.objects.filter(pk=traded.product.batches.get().pk).update(size=1)
    assert check_invariants_daily() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "Invariant check: 1 violation(s)" in mail.outbox[0].subject
    assert "8 codes but size 1" in mail.outbox[0].body
