"""The partner API: redeeming with a partner key, reading and answering statements, tenancy."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from partners.models import Dispute, LedgerEntry, Statement, StatementEvent
from partners.services import statements
from partners.services.keys import create_partner_key, revoke_partner_key
from tests.factories import PartnerFactory, ProductFactory
from tests.partners import verifier
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import StorefrontClient, make_shop
from vouchers.models import Redemption
from vouchers.services.generation import generate_batch

JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, 0, 5, tzinfo=UTC)


def at(moment):
    return mock.patch("django.utils.timezone.now", return_value=moment)


@pytest.fixture
def setup(db):
    """A shop whose product partner A honours; A holds a key; partner B holds one too."""
    shop = make_shop(codes=6)
    partner_a, partner_b = PartnerFactory(), PartnerFactory()
    agreement = make_agreement(
        merchant=shop.storefront.merchant,
        products=[shop.product],
        partner=partner_a,
        unit_amount_minor=125,
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
    )
    other_product = ProductFactory(merchant=shop.storefront.merchant)
    generate_batch(product=other_product, count=2)
    make_agreement(
        merchant=shop.storefront.merchant,
        products=[other_product],
        partner=partner_b,
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
    )
    _, key_a = create_partner_key(partner=partner_a, name="a")
    _, key_b = create_partner_key(partner=partner_b, name="b")
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=4).json()["codes"]]
    other_code = shop.client.issue(other_product.sku).json()["codes"][0]["code"]
    return {
        "shop": shop,
        "agreement": agreement,
        "a": StorefrontClient(key_a),
        "b": StorefrontClient(key_b),
        "codes": codes,
        "other_code": other_code,
        "partner_a": partner_a,
    }


@pytest.fixture
def statement(setup) -> Statement:
    with at(JAN_10):
        for code in setup["codes"][:3]:
            assert setup["a"].redeem(code).status_code == 201
    with at(FEB_1):
        (st,) = statements.close_statements(as_of=FEB_1)
    with at(FEB_1 + timedelta(days=1)):  # inside the dispute window
        yield st


# --- redeeming with a partner key --------------------------------------------------


def test_a_partner_redeems_a_code_it_honours_and_it_is_priced(setup):
    response = setup["a"].redeem(setup["codes"][0])
    assert response.status_code == 201
    body = response.json()
    assert (body["sku"], body["code_last4"]) == (setup["shop"].product.sku, setup["codes"][0][-4:])
    redemption = Redemption.objects.get(pk=body["id"])
    assert (redemption.partner_id, redemption.storefront_id) == (setup["partner_a"].pk, None)
    assert LedgerEntry.objects.get(source_id=body["id"]).amount_minor == 125


def test_a_partner_cannot_redeem_or_check_a_code_it_does_not_honour(setup):
    response = setup["a"].redeem(setup["other_code"])
    assert (response.status_code, response.json()["code"]) == (404, "unknown_code")
    check = setup["a"].check(setup["other_code"])
    assert (check.status_code, check.json()["code"]) == (404, "unknown_code")
    assert Redemption.objects.count() == 0 and LedgerEntry.objects.count() == 0


def test_a_partner_checks_and_reverses_its_own_redemption_only(setup):
    assert setup["a"].check(setup["codes"][0]).json()["status"] == "issued"
    own = setup["a"].redeem(setup["codes"][0]).json()["id"]
    shops = setup["shop"].client.redeem(setup["codes"][1]).json()["id"]
    refused = setup["a"].reverse(shops)
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert Redemption.objects.get(pk=shops).reversed_at is None
    assert setup["a"].reverse(own).status_code == 200
    assert LedgerEntry.objects.filter(kind="reversal").count() == 1


def test_keys_on_the_wrong_paths_are_not_found(setup):
    for path in ("/api/v1/products/",):
        response = setup["a"].get(path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    issue = setup["a"].issue(setup["shop"].product.sku)
    assert (issue.status_code, issue.json()["code"]) == (404, "not_found")
    for path in ("/api/v1/partner/statements/", "/api/v1/partner/keys/", "/api/v1/partner/ledger/"):
        response = setup["shop"].client.get(path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_revoked_partner_key_is_not_authenticated(setup):
    from partners.models import PartnerAPIKey

    revoke_partner_key(api_key=PartnerAPIKey.objects.get(partner=setup["partner_a"]))
    response = setup["a"].get("/api/v1/partner/statements/")
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


# --- reading statements --------------------------------------------------------------


def test_statements_lines_csv_and_document_agree(setup, statement):
    a = setup["a"]
    listed = a.get("/api/v1/partner/statements/").json()["results"]
    assert [s["id"] for s in listed] == [str(statement.pk)]
    detail = a.get(f"/api/v1/partner/statements/{statement.pk}/").json()
    assert (detail["total"], detail["status"], detail["payment_status"], detail["line_count"]) == (
        "3.75",
        "issued",
        "unpaid",
        3,
    )
    lines = a.get(f"/api/v1/partner/statements/{statement.pk}/lines/").json()["results"]
    assert [(line["line_no"], line["amount"], line["kind"]) for line in lines] == [
        (1, "1.25", "accrual"),
        (2, "1.25", "accrual"),
        (3, "1.25", "accrual"),
    ]
    csv_response = a.get(f"/api/v1/partner/statements/{statement.pk}/lines.csv")
    assert csv_response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode("utf-8"))))
    assert len(rows) == detail["line_count"]
    assert [r["amount"] for r in rows] == ["1.25"] * 3
    served = a.get(f"/api/v1/partner/statements/{statement.pk}/document/")
    document = b"".join(served.streaming_content)
    assert served["Content-Length"] == str(len(document))
    keys = a.get("/api/v1/partner/keys/").json()
    assert verifier.verify(document, served["Statement-Signature"], keys)
    assert verifier.content_sha256(document) == detail["content_sha256"]
    assert json.loads(document)["statement"]["total"] == "3.75"


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_the_document_streams_in_slices_that_add_up_to_the_signed_bytes(statement, chunk):
    # when the document is read back in slices (a large one never is whole in memory)
    size, slices = statements.document_chunks(statement, chunk=chunk)
    parts = list(slices)
    # then the slices are exactly the stored bytes, whose hash the statement carries
    stored = bytes(Statement.objects.get(pk=statement.pk).document)
    assert size == len(stored) and b"".join(parts) == stored
    assert all(len(part) == chunk for part in parts[:-1])
    assert verifier.content_sha256(b"".join(parts)) == statement.content_sha256


def test_no_plaintext_code_in_documents_csv_or_settlement_tables(setup, statement):
    from django.db import connection

    a = setup["a"]
    served = a.get(f"/api/v1/partner/statements/{statement.pk}/document/")
    document = b"".join(served.streaming_content).decode()
    csv_text = b"".join(
        a.get(f"/api/v1/partner/statements/{statement.pk}/lines.csv").streaming_content
    ).decode()
    feed = json.dumps(a.get("/api/v1/partner/ledger/").json())
    with connection.cursor() as cursor:
        dumped = []
        for table in ("partners_ledgerentry", "partners_statementline", "partners_statementevent"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
            dumped.append(repr(cursor.fetchall()))
    for code in setup["codes"]:
        for text in (document, csv_text, feed, *dumped):
            assert code not in text
            assert code.replace("-", "") not in text


def test_confirm_is_pinned_to_the_content_hash(setup, statement):
    a = setup["a"]
    wrong = a.post(f"/api/v1/partner/statements/{statement.pk}/confirm/", {"content_sha256": "0" * 64})
    assert (wrong.status_code, wrong.json()["code"]) == (409, "content_mismatch")
    assert StatementEvent.objects.count() == 0
    ok = a.post(
        f"/api/v1/partner/statements/{statement.pk}/confirm/", {"content_sha256": statement.content_sha256}
    )
    assert (ok.status_code, ok.json()["status"]) == (200, "confirmed")
    again = a.post(
        f"/api/v1/partner/statements/{statement.pk}/confirm/", {"content_sha256": statement.content_sha256}
    )
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")
    dispute = a.post(f"/api/v1/partner/statements/{statement.pk}/disputes/", {"reason": "late"})
    assert (dispute.status_code, dispute.json()["code"]) == (409, "invalid_state")
    assert list(StatementEvent.objects.values_list("action", "actor")) == [
        ("confirmed", f"partner:{setup['partner_a'].pk}")
    ]


def test_a_line_dispute_opens_and_the_window_closes(setup, statement):
    a = setup["a"]
    response = a.post(
        f"/api/v1/partner/statements/{statement.pk}/disputes/",
        {"reason": "line 2 never happened", "lines": [2], "claimed_amount": "-1.25"},
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["lines"], body["claimed_amount_minor"]) == ("open", [2], -125)
    assert a.get(f"/api/v1/partner/statements/{statement.pk}/").json()["status"] == "disputed"
    with at(
        statement.dispute_deadline.replace(microsecond=0) + (statement.dispute_deadline - statement.issued_at)
    ):
        late = a.post(f"/api/v1/partner/statements/{statement.pk}/disputes/", {"reason": "again"})
    assert (late.status_code, late.json()["code"]) == (409, "dispute_window_closed")
    assert Dispute.objects.count() == 1


def test_reconcile_reports_matched_missing_unexpected_and_mismatched(setup, statement):
    a = setup["a"]
    ids = [
        line["source_id"]
        for line in a.get(f"/api/v1/partner/statements/{statement.pk}/lines/").json()["results"]
    ]
    body = f"source_id,amount\r\n{ids[0]},1.25\r\n{ids[1]},2.00\r\nnot-ours,5.00\r\n"
    response = a.http.post(
        f"/api/v1/partner/statements/{statement.pk}/reconcile/",
        body,
        content_type="text/csv",
        HTTP_IDEMPOTENCY_KEY="r1",
    )
    assert response.status_code == 200
    result = response.json()
    assert {k: v["count"] for k, v in result.items()} == {
        "matched": 1,
        "missing": 1,
        "unexpected": 1,
        "mismatched": 1,
    }
    assert result["mismatched"]["rows"] == [
        {"source_id": ids[1], "amount": "2.00", "statement_amount": "1.25"}
    ]
    assert result["unexpected"]["rows"] == [{"source_id": ids[2], "statement_amount": "1.25"}]
    assert StatementEvent.objects.count() == 0 and Dispute.objects.count() == 0


def test_the_ledger_feed_pages_by_sequence(setup, statement):
    a = setup["a"]
    first = a.get("/api/v1/partner/ledger/?after=0&limit=2").json()
    assert [r["seq"] for r in first["results"]] == [1, 2] and first["next_after"] == 2
    rest = a.get("/api/v1/partner/ledger/?after=2").json()
    assert [r["seq"] for r in rest["results"]] == [3] and rest["next_after"] is None
    assert rest["results"][0]["statement"] == str(statement.pk)


def test_partner_b_gets_not_found_on_everything_of_partner_a(setup, statement):
    b = setup["b"]
    for suffix in ("", "lines/", "lines.csv", "document/"):
        response = b.get(f"/api/v1/partner/statements/{statement.pk}/{suffix}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), suffix
    for suffix, body in (
        ("confirm/", {"content_sha256": statement.content_sha256}),
        ("disputes/", {"reason": "x"}),
    ):
        response = b.post(f"/api/v1/partner/statements/{statement.pk}/{suffix}", body)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), suffix
    assert b.get("/api/v1/partner/statements/").json()["results"] == []
    assert b.get("/api/v1/partner/ledger/").json()["results"] == []
    assert {a["skus"][0] for a in b.get("/api/v1/partner/agreements/").json()["results"]} != {
        setup["shop"].product.sku
    }
    reversal = b.reverse(Redemption.objects.first().pk)
    assert (reversal.status_code, reversal.json()["code"]) == (404, "not_found")
    assert (
        StatementEvent.objects.count() == 0
        and Redemption.objects.filter(reversed_at__isnull=False).count() == 0
    )


def test_the_agreements_list_shows_the_partners_terms(setup):
    rows = setup["a"].get("/api/v1/partner/agreements/").json()["results"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["skus"], row["basis"], row["unit_amount"], row["currency"], row["period"]) == (
        [setup["shop"].product.sku],
        "redeemed",
        "1.25",
        "USD",
        "monthly",
    )
