"""Settlement in the admin: merchant staff see and act on their own settlement only."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.test import Client

from partners.models import Dispute, LedgerEntry, StatementEvent
from partners.services import statements
from tests.factories import StaffFactory, grant_app_permissions
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop

JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, 0, 5, tzinfo=UTC)


def world():
    """A merchant with a covered product, one closed statement, an open dispute and a staff client."""
    shop = make_shop(codes=3)
    agreement = make_agreement(
        merchant=shop.storefront.merchant,
        products=[shop.product],
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
    )
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=2).json()["codes"]]
    with mock.patch("django.utils.timezone.now", return_value=JAN_10):
        for code in codes:
            shop.client.redeem(code)
    with mock.patch("django.utils.timezone.now", return_value=FEB_1):
        (statement,) = statements.close_statements(as_of=FEB_1)
        dispute = statements.open_dispute(
            statement=statement,
            reason="one is wrong",
            actor="partner:1",
            lines=[1],
            claimed_amount_minor=-125,
        )
    staff = StaffFactory(merchant=shop.storefront.merchant)
    grant_app_permissions(staff.user, "partners", "vouchers")
    client = Client()
    client.force_login(staff.user)
    return {
        "agreement": agreement,
        "statement": statement,
        "dispute": dispute,
        "client": client,
        "entry": LedgerEntry.objects.filter(agreement=agreement).first(),
    }


@pytest.fixture
def worlds(db):
    return world(), world()


@pytest.mark.parametrize(
    "model",
    ["agreement", "agreementversion", "ledgerentry", "statement", "dispute", "statementevent", "partner"],
)
def test_staff_see_their_own_settlement_and_none_of_another_merchants(worlds, model):
    a, b = worlds
    response = a["client"].get(f"/admin/partners/{model}/")
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    own = {obj.pk for obj in response.context["cl"].queryset}
    theirs = {
        "agreement": b["agreement"].pk,
        "statement": b["statement"].pk,
        "dispute": b["dispute"].pk,
        "ledgerentry": b["entry"].pk,
        "partner": b["agreement"].partner_id,
    }.get(model)
    if theirs is not None:
        assert theirs not in own
        opened = a["client"].get(f"/admin/partners/{model}/{theirs}/change/")
        assert opened.status_code == 302  # "not found": redirected to the admin index


def test_another_merchants_statement_csv_and_document_are_not_found(worlds):
    a, b = worlds
    for suffix in ("lines.csv", "document.json", "signature.jws", "payment/"):
        assert a["client"].get(f"/admin/partners/statement/{b['statement'].pk}/{suffix}").status_code == 404


def test_a_statement_page_shows_totals_by_kind_and_links_to_its_evidence(worlds):
    a, _ = worlds
    page = a["client"].get(f"/admin/partners/statement/{a['statement'].pk}/change/").content.decode()
    assert "accrual: 2.50 (2 lines)" in page
    assert "lines.csv" in page and "document.json" in page
    csv_response = a["client"].get(f"/admin/partners/statement/{a['statement'].pk}/lines.csv")
    assert len(b"".join(csv_response.streaming_content).decode().strip().splitlines()) == 1 + 2


def test_staff_accept_a_dispute_with_an_adjustment_entry(worlds):
    a, _ = worlds
    response = a["client"].post(
        f"/admin/partners/dispute/{a['dispute'].pk}/change/",
        {"decision": "accept", "resolution": "agreed, refunded", "adjustment_amount": ""},
    )
    assert response.status_code == 302
    dispute = Dispute.objects.get(pk=a["dispute"].pk)
    assert (dispute.status, dispute.resolution_reason) == ("accepted", "agreed, refunded")
    assert (dispute.adjustment.kind, dispute.adjustment.amount_minor) == ("adjustment", -125)
    assert dispute.adjustment.refers_to_statement_id == a["statement"].pk
    actions = list(StatementEvent.objects.filter(statement=a["statement"]).values_list("action", flat=True))
    assert actions == ["disputed", "dispute_accepted", "resolved"]
    assert statements.lifecycle_status(a["statement"]) == "resolved"


def test_a_decision_without_a_reason_is_a_form_error_and_changes_nothing(worlds):
    a, _ = worlds
    response = a["client"].post(
        f"/admin/partners/dispute/{a['dispute'].pk}/change/", {"decision": "reject", "resolution": ""}
    )
    assert response.status_code == 200
    assert Dispute.objects.get(pk=a["dispute"].pk).status == "open"
    assert StatementEvent.objects.filter(statement=a["statement"]).count() == 1


def test_payments_move_the_payment_status(worlds):
    a, _ = worlds
    url = f"/admin/partners/statement/{a['statement'].pk}/payment/"
    assert a["client"].post(url, {"amount": "1.00", "reference": "wire 1"}).status_code == 302
    assert statements.payment_status(a["statement"]) == "partially_paid"
    bad = a["client"].post(url, {"amount": "1.001"})
    assert bad.status_code == 200 and LedgerEntry.objects.filter(kind="payment").count() == 1
    a["client"].post(url, {"amount": "1.50"})
    assert statements.payment_status(a["statement"]) == "paid"
    payments = list(
        LedgerEntry.objects.filter(kind="payment").order_by("seq").values_list("amount_minor", flat=True)
    )
    assert payments == [-100, -150]


def test_demo_json_prints_a_working_partner_key_and_its_skus(db):
    import json
    from io import StringIO

    from django.core.management import call_command
    from rest_framework.test import APIClient

    out = StringIO()
    call_command("demo", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["partner_skus"] == ["DEMO-STREAM-1M"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {result['partner_api_key']}")
    agreements = client.get("/api/v1/partner/agreements/").json()["results"]
    assert [a["skus"] for a in agreements] == [["DEMO-STREAM-1M"]]
    assert (agreements[0]["rate_bps"], agreements[0]["timezone"]) == (1000, "Europe/Berlin")
    call_command("demo", "--json", stdout=StringIO())  # twice: still one agreement
    from partners.models import Agreement

    assert Agreement.objects.count() == 1


def _version_form(agreement, product, *, valid_from, valid_until=None, amount=150):
    data = {
        "agreement": agreement.pk,
        "products": [product.pk],
        "basis": "redeemed",
        "direction": "merchant_pays_partner",
        "unit_amount_minor": amount,
        "rate_bps": "",
        "valid_from_0": valid_from.strftime("%Y-%m-%d"),
        "valid_from_1": valid_from.strftime("%H:%M:%S"),
        "valid_until_0": valid_until.strftime("%Y-%m-%d") if valid_until else "",
        "valid_until_1": valid_until.strftime("%H:%M:%S") if valid_until else "",
    }
    return data


def test_agreement_versions_edited_in_the_admin_go_through_the_service(db):
    from django.urls import reverse

    from partners.models import AgreementVersion
    from partners.services import agreements as agreement_service

    one = world()
    agreement, client = one["agreement"], one["client"]
    (used,) = agreement.versions.all()  # priced the January redemptions
    product = used.products.get()
    add_url = reverse("admin:partners_agreementversion_add")

    # an overlapping version is refused as a form error; nothing is written
    response = client.post(
        add_url, _version_form(agreement, product, valid_from=datetime(2026, 3, 1, tzinfo=UTC))
    )
    assert response.status_code == 200
    assert "overlaps another version" in response.content.decode()
    assert agreement.versions.count() == 1

    # after the used version is superseded, a later version is added by the service
    agreement_service.supersede_version(
        version=used, from_date=datetime(2026, 3, 1, tzinfo=UTC), unit_amount_minor=140
    )
    assert agreement.versions.count() == 2
    with mock.patch("partners.admin.add_version", wraps=agreement_service.add_version) as add_version:
        response = client.post(
            add_url,
            _version_form(
                agreement,
                product,
                valid_from=datetime(2026, 1, 1, tzinfo=UTC),
                valid_until=datetime(2026, 2, 1, tzinfo=UTC),
            ),
        )
    assert response.status_code == 200  # still overlaps the used version (valid until 1 March)
    add_version.assert_not_called()
    response = client.post(
        add_url,
        _version_form(agreement, product, valid_from=datetime(2026, 6, 1, tzinfo=UTC), amount=99),
    )
    assert response.status_code == 200 and "overlaps another version" in response.content.decode()

    # ending the superseding version first makes room; the admin's add goes through add_version
    latest = agreement.versions.order_by("-number").first()
    change_url = reverse("admin:partners_agreementversion_change", args=[latest.pk])
    with mock.patch(
        "partners.admin.change_version", wraps=agreement_service.change_version
    ) as change_version:
        response = client.post(
            change_url,
            _version_form(
                agreement,
                product,
                valid_from=datetime(2026, 3, 1, tzinfo=UTC),
                valid_until=datetime(2026, 6, 1, tzinfo=UTC),
                amount=140,
            ),
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    change_version.assert_called_once()
    latest.refresh_from_db()
    assert latest.valid_until == datetime(2026, 6, 1, tzinfo=UTC)
    with mock.patch("partners.admin.add_version", wraps=agreement_service.add_version) as add_version:
        response = client.post(
            add_url,
            _version_form(agreement, product, valid_from=datetime(2026, 6, 1, tzinfo=UTC), amount=99),
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    add_version.assert_called_once()
    created = agreement.versions.order_by("-number").first()
    assert (created.number, created.unit_amount_minor, list(created.products.all())) == (3, 99, [product])

    # the version that priced events cannot be edited: no change permission, nothing changes
    used_url = reverse("admin:partners_agreementversion_change", args=[used.pk])
    response = client.post(
        used_url, _version_form(agreement, product, valid_from=datetime(2025, 12, 1, tzinfo=UTC), amount=1)
    )
    assert response.status_code in (302, 403)
    assert AgreementVersion.objects.get(pk=used.pk).unit_amount_minor == 125
