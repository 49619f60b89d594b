"""No plaintext code anywhere in the database (invariant 3 of docs/invariants.md).

After the demo data and an imported supplier file, every text, character, JSON and
binary column of every table is read back and searched for every code, in its
display form, its normalised form and the form it had in the supplier's file.
"""

from __future__ import annotations

import io
import secrets
import string

import pytest
from django.core.management import call_command
from django.db import connection

from vouchers import codeformat, crypto
from vouchers.models import Code, Product

SEARCHED_TYPES = ("text", "character varying", "character", "bytea", "json", "jsonb")
SUPPLIER_ALPHABET = string.ascii_lowercase + string.digits


def supplier_code() -> str:
    """A supplier's code as printed on its cards: lower case, in hyphenated groups of 5."""
    raw = "".join(secrets.choice(SUPPLIER_ALPHABET) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def dump_database() -> tuple[str, bytes]:
    """Every value of every searchable column of the public schema: (text, binary)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
              AND c.data_type = ANY(%s)
            ORDER BY c.table_name, c.ordinal_position
            """,
            [list(SEARCHED_TYPES)],
        )
        columns = cursor.fetchall()
        texts: list[str] = []
        blobs: list[bytes] = []
        for table, column, data_type in columns:
            cast = "" if data_type == "bytea" else "::text"
            cursor.execute(
                f'SELECT "{column}"{cast} FROM "{table}" WHERE "{column}" IS NOT NULL'  # noqa: S608
            )
            for (value,) in cursor.fetchall():
                if data_type == "bytea":
                    blobs.append(bytes(value))
                else:
                    texts.append(value)
    assert {"vouchers_code", "vouchers_codeevent", "vouchers_batch"} <= {t for t, _, _ in columns}
    return "\n".join(texts).casefold(), b"\n".join(blobs)


def forms_of(plaintext: str, *, case_sensitive: bool) -> set[str]:
    """The code as displayed, normalised, and the head and tail of its normalised body."""
    normalised = codeformat.normalise(plaintext, case_sensitive=case_sensitive)
    return {plaintext, normalised, normalised[:12], normalised[-12:]}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_table_holds_any_plaintext_code_after_demo_and_import(tmp_path):
    from vouchers.services.imports import import_codes

    # given the demo data (generated stock) ...
    call_command("demo", "--json", stdout=io.StringIO(), stderr=io.StringIO())
    # ... and a supplier's file imported for one of its products
    supplied = [supplier_code() for _ in range(150)]
    lines = ["code,serial,expiry"] + [
        f"{code},SN{index:08d},2031-12-31" for index, code in enumerate(supplied, start=1)
    ]
    path = tmp_path / "supplier.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    product = Product.objects.get(sku="DEMO-COFFEE-10")
    result = import_codes(product=product, file=str(path), filename="supplier.csv")
    assert result.imported == 150
    assert Code.objects.count() == 3 * 200 + 150

    # every code decrypted, in every form it could leak in
    needles: set[str] = set(supplied)
    for code in Code.objects.select_related("batch").order_by("pk"):
        needles |= forms_of(crypto.decrypt_code(code), case_sensitive=code.batch.case_sensitive)
    assert {s.replace("-", "").upper() for s in supplied} <= needles

    # when the whole database is dumped
    text, blob = dump_database()

    # then the search works (what is stored in clear is found) ...
    for code in Code.objects.all()[:50]:
        assert code.last4.casefold() in text
        assert bytes(code.blind_index) in blob
    # ... and no plaintext is anywhere, as text (any case) or as UTF-8 bytes
    leaked_as_text = sorted(n for n in needles if n.casefold() in text)
    leaked_as_bytes = sorted(
        n for n in needles
        if n.encode() in blob or n.lower().encode() in blob or n.upper().encode() in blob
    )
    assert leaked_as_text == []
    assert leaked_as_bytes == []
