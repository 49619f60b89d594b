"""The console in a real browser: log in as merchant staff, read the dashboard, approve a held order."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.urls import reverse

from tests.console.day import counted, scripted_day
from tests.factories import StaffFactory, grant_app_permissions
from vouchers.models import Issuance

PASSWORD = "correct horse battery"


@pytest.fixture
def day(transactional_db):
    return scripted_day()


@pytest.fixture
def staff(day):
    member = StaffFactory(merchant=day.shop.storefront.merchant, user__username="ops")
    grant_app_permissions(member.user, "vouchers", "fraud")
    return member


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")


def test_staff_log_in_and_the_dashboard_shows_the_days_figures(page, live_server, day, staff):
    # given the day's figures counted from the rows
    expected = counted(day.shop.storefront.merchant)
    # when
    log_in(page, live_server, "ops")
    # then
    figure = lambda test_id: page.get_by_test_id(test_id).inner_text().strip()  # noqa: E731
    assert figure("dashboard-merchant") == f"Today at {day.shop.storefront.merchant.name}"
    assert figure("in-stock") == str(expected["in_stock"]) == "27"
    assert figure("issued-today") == str(expected["issued"]) == "7"
    assert figure("redeemed-today") == str(expected["redeemed"]) == "4"
    assert figure("reversed-today") == str(expected["reversed"]) == "1"
    assert figure("review-waiting") == str(expected["review"]) == "1"
    sku = day.shop.product.sku
    assert figure(f"in-stock-{sku}") == "27"
    assert figure(f"claim-rate-{sku}") == "18%"  # 7 sold of 40 loaded
    assert figure(f"redemption-rate-{sku}") == "43%"  # 3 redeemed now of 7 sold
    assert page.locator("canvas.chart").count() == 3


def test_staff_approve_a_held_order_from_the_review_queue(page, live_server, day, staff):
    log_in(page, live_server, "ops")
    # when: from the dashboard's review card to the queue, the order, then Approve
    page.get_by_test_id("review-waiting").click()
    page.wait_for_url(f"**{reverse('admin:vouchers_issuance_review_queue')}")
    page.get_by_role("link", name=str(day.held.pk)).first.click()
    page.get_by_role("link", name="Approve…").click()
    page.locator("#content-main input[type=submit]").click()
    # then
    page.wait_for_load_state()
    assert Issuance.objects.get(pk=day.held.pk).status == Issuance.Status.ISSUED
    page.goto(f"{live_server.url}{reverse('admin:index')}")
    assert page.get_by_test_id("review-waiting").inner_text().strip() == "0"
    assert page.get_by_test_id("issued-today").inner_text().strip() == "13"


def test_the_dashboard_speaks_chinese_to_a_chinese_browser(browser, live_server, day, staff):
    context = browser.new_context(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-Hans,zh;q=0.9"})
    page = context.new_page()
    try:
        log_in(page, live_server, "ops")
        assert page.get_by_test_id("dashboard-merchant").inner_text().strip() == (
            f"{day.shop.storefront.merchant.name} 今日概览"
        )
        body = page.locator("body").inner_text()
        for label in ("库存卡码", "已发放", "已核销", "冲正", "审核队列", "即将到期", "领取率", "核销率"):
            assert label in body
        assert "Codes in stock" not in body
    finally:
        context.close()


@pytest.fixture
def ledger_emptied_before_the_flush(day):
    """On SQLite the end-of-test flush DELETEs, which the ledger's append-only triggers refuse:
    empty the ledger first with the triggers briefly dropped, then put them back (PostgreSQL
    flushes with TRUNCATE, which no row trigger refuses)."""
    yield
    if connection.vendor != "sqlite":
        return
    triggers = importlib.import_module("partners.migrations.0003_settlement_append_only_triggers")
    with connection.schema_editor() as editor:
        triggers.backwards(None, editor)
        for table in ("partners_statementline", "partners_statementevent", "partners_ledgerentry",
                      "partners_statement"):
            editor.execute(f"DELETE FROM {table}", params=None)
        triggers.forwards(None, editor)


def test_the_dashboard_shows_what_is_owed_to_each_partner_for_the_open_period(
    page, live_server, day, staff, ledger_emptied_before_the_flush
):
    from django.db.models import Sum

    from partners.models import LedgerEntry
    from tests.factories import PartnerFactory
    from tests.partners.conftest import make_agreement

    # given a partner paid 1.25 USD per redemption, and two codes sold and redeemed since
    make_agreement(merchant=day.shop.storefront.merchant, products=[day.shop.product],
                   partner=PartnerFactory(name="Alpha"), unit_amount_minor=125)
    for _ in range(2):
        sold = day.shop.client.issue(day.shop.product.sku, quantity=1, customer="regular-0").json()
        assert day.shop.client.redeem(sold["codes"][0]["code"]).status_code == 201
    owed = LedgerEntry.objects.filter(line__isnull=True).aggregate(total=Sum("amount_minor"))["total"]
    # when
    log_in(page, live_server, "ops")
    # then the partner's row shows the ledger's sum on the partner's side
    row = page.get_by_test_id("partner-row")
    assert row.count() == 1
    assert "Alpha" in row.inner_text()
    assert row.get_by_test_id("owed-to-partner").inner_text().strip() == f"{owed / 100:.2f} USD" == "2.50 USD"
    assert row.get_by_test_id("owed-by-partner").inner_text().strip() == ""
