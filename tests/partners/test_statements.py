"""Closing statements: periods, lines, totals, late entries, signatures, idempotence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import rfc8785

from partners.models import AppendOnlyError, LedgerEntry, Statement, StatementLine
from partners.services import statements
from partners.signing import published_keys
from tests.partners import verifier
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop

JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)


def at(moment: datetime):
    return mock.patch("django.utils.timezone.now", return_value=moment)


@pytest.fixture
def january(db):
    """A covered shop with three redemptions on 10 January 2026 (UTC)."""
    shop = make_shop(codes=5)
    agreement = make_agreement(
        merchant=shop.storefront.merchant,
        products=[shop.product],
        unit_amount_minor=125,
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
    )
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=3).json()["codes"]]
    with at(JAN_10):
        redemptions = [shop.client.redeem(code).json()["id"] for code in codes]
    shop.agreement, shop.redemptions = agreement, redemptions
    return shop


def close(moment: datetime) -> list[Statement]:
    with at(moment):
        return statements.close_statements(as_of=moment)


def test_closing_a_month_puts_its_entries_on_one_signed_statement(january):
    # when January is closed on 1 February
    (statement,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    # then one statement with three lines of 1.25 USD, verifiable without the project's code
    assert (statement.number, statement.line_count, statement.total_minor) == (1, 3, 375)
    assert (statement.opening_minor, statement.closing_minor) == (0, 375)
    assert (statement.period_start, statement.period_end) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
    )
    document = bytes(statement.document)
    assert verifier.verify(document, statement.signature, {"keys": published_keys()})
    assert verifier.totals_hold(document)
    assert verifier.content_sha256(document) == statement.content_sha256
    body = json.loads(document)
    assert rfc8785.dumps(body) == document  # the bytes are canonical
    assert [line["amount"] for line in body["lines"]] == ["1.25", "1.25", "1.25"]
    assert body["previous_statement_sha256"] is None
    assert {line["source_id"] for line in body["lines"]} == set(january.redemptions)
    assert StatementLine.objects.filter(statement=statement).count() == 3


def test_closing_twice_closes_nothing_more(january):
    close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    assert close(datetime(2026, 2, 1, 0, 6, tzinfo=UTC)) == []
    assert Statement.objects.count() == 1


def test_a_period_not_yet_ended_is_not_closed(january):
    assert close(datetime(2026, 1, 31, 23, 59, tzinfo=UTC)) == []
    assert Statement.objects.count() == 0


def test_a_future_as_of_needs_allow_future(january):
    with pytest.raises(statements.FutureCloseRefused):
        statements.close_statements(as_of=datetime.now(UTC) + timedelta(days=1))
    assert Statement.objects.count() == 0


def test_a_late_reversal_lands_on_the_next_statement_and_leaves_the_first_unchanged(january):
    # given January closed
    (first,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    bytes_before, signature_before = bytes(first.document), first.signature
    # when one January redemption is reversed on 3 February and February is closed
    with at(datetime(2026, 2, 3, tzinfo=UTC)):
        assert january.client.reverse(january.redemptions[0]).status_code == 200
    (second,) = close(datetime(2026, 3, 1, 0, 5, tzinfo=UTC))
    # then the first statement's bytes and signature are unchanged
    first = Statement.objects.get(pk=first.pk)
    assert (bytes(first.document), first.signature) == (bytes_before, signature_before)
    # and the second carries the reversal pointing at the first, opening at its closing
    body = json.loads(bytes(second.document))
    (line,) = body["lines"]
    assert (line["kind"], line["amount_minor"], line["original_statement"]) == (
        "reversal",
        -125,
        str(first.pk),
    )
    assert (second.opening_minor, second.total_minor, second.closing_minor) == (375, -125, 250)
    assert body["previous_statement_sha256"] == first.content_sha256
    assert verifier.verify(bytes(second.document), second.signature, {"keys": published_keys()})


def test_an_entry_recorded_after_its_period_closed_carries_a_pointer_to_that_period(january):
    (first,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    # given an entry that happened in January but was recorded after the close
    original = LedgerEntry.objects.order_by("seq").first()
    from partners.services import ledger

    ledger.append(
        [
            ledger.PendingEntry(
                partner_id=original.partner_id,
                merchant_id=original.merchant_id,
                agreement_id=original.agreement_id,
                kind="adjustment",
                currency="USD",
                amount_minor=7,
                source_type="test",
                source_id="late",
                source_key="test:late",
                occurred_at=datetime(2026, 1, 20, tzinfo=UTC),
            )
        ]
    )
    (second,) = close(datetime(2026, 3, 1, 0, 5, tzinfo=UTC))
    line = StatementLine.objects.get(statement=second)
    assert (line.entry.amount_minor, line.original_statement_id) == (7, first.pk)


def test_flipping_a_byte_a_line_or_the_total_breaks_the_signature(january):
    (statement,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    keys = {"keys": published_keys()}
    document = bytes(statement.document)
    flipped = bytearray(document)
    flipped[len(flipped) // 2] ^= 0x01
    body = json.loads(document)
    body["lines"] = body["lines"][1:]
    without_a_line = rfc8785.dumps(body)
    body = json.loads(document)
    body["statement"]["total_minor"] += 1
    other_total = rfc8785.dumps(body)
    assert verifier.verify(document, statement.signature, keys)
    for tampered in (bytes(flipped), without_a_line, other_total):
        assert not verifier.verify(tampered, statement.signature, keys)


def test_a_statement_signed_before_a_key_rotation_still_verifies(january, settings):
    import secrets

    (old,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    # when the signing key is rotated out of the ring entirely
    settings.PARTNER_SIGNING_KEYS = {"rotated": secrets.token_bytes(32)}
    settings.PARTNER_SIGNING_KEY_ID = "rotated"
    with at(datetime(2026, 2, 5, tzinfo=UTC)):
        january.client.reverse(january.redemptions[1])
    (new,) = close(datetime(2026, 3, 1, 0, 5, tzinfo=UTC))
    # then both verify against the published keys, under different kids
    keys = {"keys": published_keys()}
    assert {k["kid"] for k in keys["keys"]} >= {old.kid, "rotated"}
    assert new.kid == "rotated" != old.kid
    assert verifier.verify(bytes(old.document), old.signature, keys)
    assert verifier.verify(bytes(new.document), new.signature, keys)


def test_an_issued_statement_cannot_be_changed_or_deleted(january):
    (statement,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    from django.db import DatabaseError, connection, transaction

    with pytest.raises(AppendOnlyError):
        Statement.objects.filter(pk=statement.pk).update(total_minor=0)
    with pytest.raises(AppendOnlyError):
        statement.delete()
    for sql in ("UPDATE partners_statement SET total_minor = 0", "DELETE FROM partners_statementline"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute(sql)
    assert Statement.objects.get().total_minor == 375
    assert StatementLine.objects.count() == 3


def test_the_document_serialiser_matches_rfc8785():
    value = {"b": 'ü\u0001\n"\\ /\u2028', "a": [1, -2, None, "x"], "é": {"z": 0, "A": "𝄞"}}
    assert statements._dump(value) == rfc8785.dumps(value)


def test_verify_statement_checks_a_document_offline(january, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    (statement,) = close(datetime(2026, 2, 1, 0, 5, tzinfo=UTC))
    document, keys = tmp_path / "statement.json", tmp_path / "keys.json"
    document.write_bytes(bytes(statement.document))
    keys.write_text(json.dumps({"keys": published_keys()}))
    out = StringIO()
    call_command(
        "verify_statement", document=str(document), signature=statement.signature, keys=str(keys), stdout=out
    )
    assert out.getvalue().strip() == "signature valid"
    document.write_bytes(bytes(statement.document).replace(b'"total_minor":375', b'"total_minor":376'))
    with pytest.raises(CommandError, match="INVALID"):
        call_command(
            "verify_statement", document=str(document), signature=statement.signature, keys=str(keys)
        )


def test_close_statements_command_refuses_a_future_as_of_without_allow_future(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="future"):
        call_command("close_statements", "--as-of", "2999-01-01T00:00:00+00:00")
