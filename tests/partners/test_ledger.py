"""The settlement ledger: priced in the event's transaction, exact reversals, chained, append-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from partners.models import AppendOnlyError, LedgerEntry, LedgerHead
from partners.money import exponent, format_minor, price_minor, round_to_minor
from partners.services import ledger
from tests.factories import PartnerFactory
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop
from vouchers.models import Redemption

# --- money ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "minor", "text"),
    [
        ("JPY", 1250, "1250"),
        ("USD", 1250, "12.50"),
        ("KWD", 1250, "1.250"),
        ("USD", -5, "-0.05"),
        ("KWD", -1, "-0.001"),
        ("JPY", 0, "0"),
        ("USD", 0, "0.00"),
    ],
)
def test_amounts_are_shown_with_exactly_the_currencys_digits(currency, minor, text):
    assert format_minor(minor, currency) == text


def test_exponents_follow_iso_4217():
    assert (exponent("JPY"), exponent("USD"), exponent("KWD"), exponent("EUR")) == (0, 2, 3, 2)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("0.125", "USD", 12),
        ("0.135", "USD", 14),
        ("2.5", "JPY", 2),
        ("3.5", "JPY", 4),
        ("0.0125", "KWD", 12),
        ("0.0135", "KWD", 14),
        ("-0.125", "USD", -12),
    ],
)
def test_rounding_is_half_even_to_the_exponent(amount, currency, minor):
    assert round_to_minor(Decimal(amount), currency) == minor


def test_a_rate_is_rounded_once_per_entry():
    # 2.5 % of 50.05 USD = 1.25125 -> 125 cents; of 10.10 = 0.2525 -> 25 (half-even)
    assert (
        price_minor(
            face_value=Decimal("50.05"),
            face_currency="USD",
            unit_amount_minor=None,
            rate_bps=250,
            currency="USD",
        )
        == 125
    )
    assert (
        price_minor(
            face_value=Decimal("10.10"),
            face_currency="USD",
            unit_amount_minor=None,
            rate_bps=250,
            currency="USD",
        )
        == 25
    )
    assert (
        price_minor(
            face_value=Decimal("1000"),
            face_currency="JPY",
            unit_amount_minor=None,
            rate_bps=125,
            currency="JPY",
        )
        == 12
    )  # 12.5 -> 12


# --- pricing through the storefront API ------------------------------------------


def test_a_redemption_of_a_covered_product_appends_one_entry_per_partner(db):
    # given a product two partners are paid for, one by rate and one by unit amount
    shop = make_shop(codes=3)
    merchant = shop.storefront.merchant
    by_rate = make_agreement(merchant=merchant, products=[shop.product], rate_bps=250)
    by_unit = make_agreement(
        merchant=merchant, products=[shop.product], unit_amount_minor=100, direction="partner_pays_merchant"
    )
    code = shop.client.issue(shop.product.sku).json()["codes"][0]
    # when it is redeemed
    response = shop.client.redeem(code["code"])
    # then each partner gets one entry in its own chain, signed by direction
    assert response.status_code == 201
    entries = {e.partner_id: e for e in LedgerEntry.objects.all()}
    assert len(entries) == 2
    rate_entry, unit_entry = entries[by_rate.partner_id], entries[by_unit.partner_id]
    assert (rate_entry.amount_minor, rate_entry.seq, rate_entry.kind) == (125, 1, "accrual")  # 2.5% of 50.00
    assert (unit_entry.amount_minor, unit_entry.seq) == (-100, 1)
    assert rate_entry.source_type == "redemption" and rate_entry.source_id == response.json()["id"]
    assert rate_entry.code_last4 == code["code"][-4:] and rate_entry.sku == shop.product.sku
    assert rate_entry.prev_hash == ledger.GENESIS_HASH
    assert ledger.verify_chain(partner_id=by_rate.partner_id) is None


def test_an_uncovered_product_appends_nothing(db):
    shop = make_shop(codes=1)
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    assert shop.client.redeem(code).status_code == 201
    assert LedgerEntry.objects.count() == 0


def test_a_reversal_negates_the_original_entries_exactly(covered_shop):
    # given a redeemed covered code, and a later price change that must not matter
    shop = covered_shop
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    redemption_id = shop.client.redeem(code).json()["id"]
    original = LedgerEntry.objects.get()
    # when the redemption is reversed
    assert shop.client.reverse(redemption_id).status_code == 200
    # then one reversal entry negates it and points at it
    reversal = LedgerEntry.objects.exclude(pk=original.pk).get()
    assert (reversal.kind, reversal.amount_minor, reversal.reverses_id) == ("reversal", -125, original.pk)
    assert (reversal.seq, reversal.prev_hash) == (2, original.hash)
    assert (
        reversal.source_id == redemption_id and reversal.agreement_version_id == original.agreement_version_id
    )


def test_issued_basis_prices_each_code_when_it_becomes_issued(db):
    # given an agreement paying per issued code
    shop = make_shop(codes=5)
    agreement = make_agreement(
        merchant=shop.storefront.merchant, products=[shop.product], basis="issued", unit_amount_minor=30
    )
    # when 3 codes are reserved (nothing yet), then confirmed
    issuance = shop.client.issue(shop.product.sku, quantity=3, reserve=True).json()
    assert LedgerEntry.objects.count() == 0
    assert shop.client.confirm(issuance["id"]).status_code == 200
    # then three entries, one per code, none for the redemption basis
    entries = list(LedgerEntry.objects.order_by("seq"))
    assert [(e.seq, e.amount_minor, e.source_type) for e in entries] == [
        (1, 30, "issued_code"),
        (2, 30, "issued_code"),
        (3, 30, "issued_code"),
    ]
    assert {e.agreement_id for e in entries} == {agreement.pk}
    assert LedgerHead.objects.get(partner_id=agreement.partner_id).seq == 3


def test_a_source_event_prices_once_when_recorded_twice(covered_shop):
    shop = covered_shop
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    redemption = Redemption.objects.get(pk=shop.client.redeem(code).json()["id"])
    # when the same event is recorded again
    with transaction.atomic():
        again = ledger.record_redemption(redemption=redemption, product=shop.product, code_last4="0000")
    # then nothing new is written
    assert again == []
    assert LedgerEntry.objects.count() == 1
    assert LedgerHead.objects.get(partner_id=shop.agreement.partner_id).seq == 1


def test_a_refused_redemption_leaves_the_ledger_unchanged(covered_shop):
    shop = covered_shop
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    shop.client.redeem(code)
    assert shop.client.redeem(code).status_code == 409
    assert LedgerEntry.objects.count() == 1


# --- append-only -------------------------------------------------------------------


@pytest.fixture
def one_entry(covered_shop) -> LedgerEntry:
    code = covered_shop.client.issue(covered_shop.product.sku).json()["codes"][0]["code"]
    covered_shop.client.redeem(code)
    return LedgerEntry.objects.get()


def test_the_orm_refuses_to_change_or_delete_an_entry(one_entry):
    one_entry.amount_minor = 1
    with pytest.raises(AppendOnlyError):
        one_entry.save()
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=one_entry.pk).update(amount_minor=1)
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=one_entry.pk).delete()
    with pytest.raises(AppendOnlyError):
        one_entry.delete()
    assert LedgerEntry.objects.get().amount_minor == 125


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE partners_ledgerentry SET amount_minor = 1",
        "DELETE FROM partners_ledgerentry",
    ],
)
def test_the_database_refuses_raw_sql_changes_of_an_entry(one_entry, sql):
    with pytest.raises(DatabaseError, match="append-only"):  # noqa: SIM117
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert LedgerEntry.objects.get().amount_minor == 125


def test_raw_sql_insert_is_allowed_so_bulk_loads_work(one_entry):
    partner = PartnerFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO partners_ledgerentry (partner_id, merchant_id, agreement_id, seq, kind, currency, "
            "amount_minor, source_type, source_id, source_key, sku, code_last4, memo, actor, occurred_at, "
            "recorded_at, prev_hash, hash) SELECT %s, merchant_id, agreement_id, 1, kind, currency, 5, "
            "'test', 'x', 'test:x', sku, '', '', '', occurred_at, recorded_at, prev_hash, hash "
            "FROM partners_ledgerentry WHERE id = %s",
            [partner.pk, one_entry.pk],
        )
    assert LedgerEntry.objects.filter(partner=partner).count() == 1
