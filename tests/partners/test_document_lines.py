"""The document's lines built by the database are the bytes the Python serialiser gives.

On PostgreSQL, closing builds each line's canonical JSON in SQL; SQLite builds it in
Python (line_document + RFC 8785). Both must agree to the byte, for awkward strings
(quotes, backslashes, control characters, non-ASCII, U+2028, DEL), negative and
zero amounts in currencies with 0, 2 and 3 minor digits, nulls and corrections.
Large documents are signed in chunks; that signer must give cryptography's bytes.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import DatabaseError, connection, transaction

from partners.models import Statement
from partners.services import ledger, statements
from partners.signing import (
    _b64url_chunks,
    b64url,
    ed25519_sign_chunks,
    published_keys,
    sign_detached,
    sign_detached_chunks,
)
from tests.factories import MerchantFactory, PartnerFactory
from tests.partners import verifier
from tests.partners.conftest import make_agreement
from vouchers.models import Product

AWKWARD = [
    'q"uote\\back/slash',
    "tab\tnl\ncr\rbs\bff\f\x01\x02\x1f\x7f",
    "ünï 中文 𝄞 \u2028\u2029 é",
    "",
    "=cmd|' /C calc'!A0",
]
AMOUNTS = [0, 1, -1, 5, -5, 99, 100, -100, 12345, -12345, 10**12 + 7]


def _entries(agreement, product, moment):
    pending = []
    for n, amount in enumerate(AMOUNTS):
        text = AWKWARD[n % len(AWKWARD)]
        pending.append(
            ledger.PendingEntry(
                partner_id=agreement.partner_id,
                merchant_id=agreement.merchant_id,
                agreement_id=agreement.pk,
                kind="adjustment",
                currency=agreement.currency,
                amount_minor=amount,
                source_type="test" + text[:8],
                source_id=text,
                source_key=f"doc-lines:{agreement.pk}:{n}",
                occurred_at=moment + timedelta(microseconds=n * 1001),
                sku=text[:64],
                code_last4=str(1000 + n) if n % 2 else "",
            )
        )
    with transaction.atomic():
        return ledger.append(pending)


def _python_lines(statement: Statement) -> bytes:
    rows = []
    with connection.cursor() as cursor:
        cursor.execute(statements._READ_LINES, [statements._uuid_param(statement.pk)])
        rows = cursor.fetchall()
    return b",".join(rfc8785.dumps(statements.line_document(row, statement.currency)) for row in rows)


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_lines_built_in_sql_are_the_rfc8785_bytes(db, currency):
    merchant = MerchantFactory()
    product = Product.objects.create(
        merchant=merchant, sku="DOC", name="Doc", face_value=10, currency=currency
    )
    agreement = make_agreement(
        merchant=merchant, products=[product], partner=PartnerFactory(), currency=currency
    )
    jan, feb = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 2, 5, tzinfo=UTC)
    first = _entries(agreement, product, jan)
    with mock.patch("django.utils.timezone.now", return_value=datetime(2026, 2, 1, 1, tzinfo=UTC)):
        (january,) = statements.close_statements(as_of=datetime(2026, 2, 1, tzinfo=UTC))
    # a late entry (points back at January) and a reversal, on February's statement
    late = ledger.PendingEntry(
        partner_id=agreement.partner_id,
        merchant_id=agreement.merchant_id,
        agreement_id=agreement.pk,
        kind="adjustment",
        currency=currency,
        amount_minor=-7,
        source_type="late",
        source_id="late",
        source_key=f"doc-lines:{agreement.pk}:late",
        occurred_at=jan,
    )
    reversal = ledger.PendingEntry(
        partner_id=agreement.partner_id,
        merchant_id=agreement.merchant_id,
        agreement_id=agreement.pk,
        kind="reversal",
        currency=currency,
        amount_minor=-first[3].amount_minor,
        source_type="reversal",
        source_id="r",
        source_key=f"doc-lines:{agreement.pk}:reversal",
        occurred_at=feb,
        reverses_id=first[3].pk,
    )
    with transaction.atomic():
        ledger.append([late, reversal])
    with mock.patch("django.utils.timezone.now", return_value=datetime(2026, 3, 1, 1, tzinfo=UTC)):
        (february,) = statements.close_statements(as_of=datetime(2026, 3, 1, tzinfo=UTC))

    for statement in (january, february):
        statement = Statement.objects.get(pk=statement.pk)
        expected = _python_lines(statement)
        for chunk in (1, 2, 3, 20000):
            built = b"".join(statements.document_line_chunks(statement.pk, currency, chunk=chunk))
            assert built == expected, (connection.vendor, chunk)
        document = bytes(statement.document)
        assert document == rfc8785.dumps(json.loads(document))
        assert document.startswith(b'{"lines":[' + expected + b"]")
        assert verifier.verify(document, statement.signature, {"keys": published_keys()})
        assert verifier.content_sha256(document) == statement.content_sha256
    assert b'"original_statement":"' + str(january.pk).encode() in bytes(
        Statement.objects.get(pk=february.pk).document
    )


def test_a_large_document_is_signed_from_its_spool_file(db, monkeypatch):
    merchant = MerchantFactory()
    product = Product.objects.create(merchant=merchant, sku="BIG", name="Big", face_value=10, currency="USD")
    agreement = make_agreement(merchant=merchant, products=[product], partner=PartnerFactory())
    _entries(agreement, product, datetime(2026, 1, 5, tzinfo=UTC))
    monkeypatch.setattr(statements, "SIGN_IN_MEMORY_MAX", 100)
    with mock.patch("django.utils.timezone.now", return_value=datetime(2026, 2, 1, 1, tzinfo=UTC)):
        (statement,) = statements.close_statements(as_of=datetime(2026, 2, 1, tzinfo=UTC))
    document = bytes(Statement.objects.get(pk=statement.pk).document)
    assert len(document) > 100
    assert verifier.verify(document, statement.signature, {"keys": published_keys()})
    assert statement.signature == sign_detached(document)[0]
    assert verifier.totals_hold(document)


def test_the_chunked_signer_gives_the_same_signature_as_cryptography(db):
    rng = random.Random(7)
    for size in [0, 1, 2, 3, 4, 31, 32, 33, 64, 1000, 4099, 70001]:
        key = Ed25519PrivateKey.generate()
        message = os.urandom(size)
        cuts = sorted(rng.sample(range(size + 1), min(size + 1, 5)))

        def chunks(message=message, cuts=cuts):
            start = 0
            for cut in [*cuts, len(message)]:
                yield message[start:cut]
                start = cut

        assert ed25519_sign_chunks(key, chunks) == key.sign(message)
        assert b"".join(_b64url_chunks(chunks())).decode() == b64url(message)
        jws, _ = sign_detached_chunks(chunks)
        assert jws == sign_detached(message)[0]
        assert verifier.verify(message, jws, {"keys": published_keys()})


def test_lines_and_statements_are_checked_by_triggers_not_per_row_keys(db):
    merchant = MerchantFactory()
    product = Product.objects.create(merchant=merchant, sku="TRG", name="Trg", face_value=10, currency="USD")
    agreement = make_agreement(merchant=merchant, products=[product], partner=PartnerFactory())
    entries = _entries(agreement, product, datetime(2026, 1, 5, tzinfo=UTC))
    with mock.patch("django.utils.timezone.now", return_value=datetime(2026, 2, 1, 1, tzinfo=UTC)):
        (statement,) = statements.close_statements(as_of=datetime(2026, 2, 1, tzinfo=UTC))
    statement = Statement.objects.get(pk=statement.pk)
    param = statements._uuid_param(statement.pk)
    # a line naming no ledger entry is refused
    with (
        pytest.raises(DatabaseError, match="names no ledger entry"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO partners_statementline (statement_id, entry_id, line_no) VALUES (%s, %s, %s)",
            [param, max(e.pk for e in entries) + 1000, 999],
        )
    # a statement whose line_count is not its number of lines is refused
    values = {f.attname: getattr(statement, f.attname) for f in Statement._meta.concrete_fields}
    values.update(
        id=uuid.uuid4(),
        number=2,
        period_start=statement.period_end,
        period_end=statement.period_end + timedelta(days=28),
        line_count=1,
        previous_id=statement.pk,
    )
    with pytest.raises(DatabaseError, match="line_count"), transaction.atomic():
        Statement.objects.create(**values)
    # and every entry is still on exactly one line of the statement that was closed
    assert statement.line_count == len(entries)


@pytest.mark.postgres
def test_lines_built_by_parallel_workers_see_the_closing_transactions_lines(db):
    """The lines' COPY may run in parallel workers while the close's transaction, which
    inserted the lines, is still open: the workers must see its rows, in line order.

    Here the entries are uncommitted too (the test's transaction holds everything)."""
    merchant = MerchantFactory()
    product = Product.objects.create(merchant=merchant, sku="PAR", name="Par", face_value=10, currency="USD")
    agreement = make_agreement(merchant=merchant, products=[product], partner=PartnerFactory())
    _entries(agreement, product, datetime(2026, 1, 5, tzinfo=UTC))
    with mock.patch("django.utils.timezone.now", return_value=datetime(2026, 2, 1, 1, tzinfo=UTC)):
        (statement,) = statements.close_statements(as_of=datetime(2026, 2, 1, tzinfo=UTC))
    expected = _python_lines(statement)  # the test's transaction is still open: nothing is committed
    with transaction.atomic(), connection.cursor() as cursor:
        # make a parallel plan the cheapest even for these few rows
        statements._set_local(
            cursor,
            {"parallel_setup_cost": "0", "parallel_tuple_cost": "0", "min_parallel_table_scan_size": "0"},
        )
        sql = statements._lines_copy_sql("USD")
        query = sql[len("COPY (") : sql.rindex(") TO STDOUT")]
        # what document_line_chunks sets for its query
        statements._set_local(
            cursor, {"enable_sort": "off", "enable_bitmapscan": "off", "min_parallel_index_scan_size": "0"}
        )
        cursor.execute("EXPLAIN " + query, {"statement": statement.pk, "currency_json": '"USD"'})
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Gather" in plan, plan  # workers read lines or entries, none of them committed
        built = b"".join(statements.document_line_chunks(statement.pk, "USD", chunk=4))
    assert built == expected
    assert bytes(Statement.objects.get(pk=statement.pk).document).startswith(b'{"lines":[' + expected + b"]")
