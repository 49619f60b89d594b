"""A partner's reconciliation CSV may be far larger than a storefront's JSON body, within its own limit."""

from __future__ import annotations

import pytest

from partners.models import StatementEvent
from tests.partners.test_partner_api import setup, statement  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def reconcile(setup, statement, body: str, **headers):  # noqa: F811
    return setup["a"].http.post(
        f"/api/v1/partner/statements/{statement.pk}/reconcile/", body, content_type="text/csv",
        HTTP_IDEMPOTENCY_KEY="big", **headers,
    )


def test_a_csv_of_many_rows_is_reconciled(setup, statement, settings):  # noqa: F811
    # given the partner's file with its 3 redemptions and 2,000 rows we never saw (about 90 KB)
    ids = [line["source_id"] for line in setup["a"].get(
        f"/api/v1/partner/statements/{statement.pk}/lines/").json()["results"]]
    rows = [f"{source_id},1.25" for source_id in ids]
    rows += [f"00000000-0000-4000-8000-{n:012d},1.25" for n in range(2000)]
    body = "source_id,amount\r\n" + "\r\n".join(rows) + "\r\n"
    assert len(body) > 10 * settings.API_MAX_BODY_BYTES
    # when
    response = reconcile(setup, statement, body)
    # then
    assert response.status_code == 200
    counts = {k: v["count"] for k, v in response.json().items()}
    assert counts == {"matched": 3, "missing": 2000, "unexpected": 0, "mismatched": 0}


def test_a_csv_over_the_upload_limit_is_413_before_it_is_read(setup, statement, settings):  # noqa: F811
    settings.API_MAX_UPLOAD_BYTES = 50_000
    events = StatementEvent.objects.count()
    response = reconcile(setup, statement, "source_id,amount\r\n" + "x,1.00\r\n" * 10_000)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert response.json()["max_bytes"] == 50_000
    assert StatementEvent.objects.count() == events


def test_the_upload_limit_is_only_for_the_reconciliation(setup, statement, settings):  # noqa: F811
    body = '{"reason": "' + "x" * (settings.API_MAX_BODY_BYTES + 10) + '"}'
    response = setup["a"].http.post(f"/api/v1/partner/statements/{statement.pk}/disputes/", body,
                                    content_type="application/json", HTTP_IDEMPOTENCY_KEY="d")
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")


def test_the_csv_parser_reads_no_further_than_the_limit(settings):
    import io

    from partners.api.views import CsvTextParser
    from vouchers.api.errors import PayloadTooLarge

    settings.API_MAX_UPLOAD_BYTES = 100
    assert CsvTextParser().parse(io.BytesIO(b"\xef\xbb\xbfsource_id,amount\r\n")) == "source_id,amount\r\n"
    with pytest.raises(PayloadTooLarge):
        CsvTextParser().parse(io.BytesIO(b"x" * 101))
