"""The admin's home is the merchant's dashboard: figures equal the database's, per merchant only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.console.day import counted, scripted_day
from tests.factories import MerchantFactory, StaffFactory, UserFactory
from vouchers.dashboard import rollup
from vouchers.dashboard.models import (
    DailyCodeFigure,
    DailyDecisionFigure,
    MerchantAlertSetting,
    ProductAlertSetting,
    RollupWatermark,
)
from vouchers.dashboard.selectors import merchant_dashboard
from vouchers.models import Batch

INDEX = reverse("admin:index")


def figures_of(board) -> dict[str, int]:
    return {
        "in_stock": board.in_stock,
        "issued": board.totals["issued"][1],
        "redeemed": board.totals["redeemed"][1],
        "reversed": board.totals["reversed"][1],
        "review": board.review_waiting,
        "decisions": sum(sum(days) for days in board.decisions_daily.values()),
    }


def rollup_rows() -> list[tuple]:
    return list(DailyCodeFigure.objects.order_by("pk").values_list("batch_id", "metric", "count"))


@pytest.fixture
def day(db):
    return scripted_day()


@pytest.fixture
def staff_of_day(client, day):
    member = StaffFactory(merchant=day.shop.storefront.merchant)
    client.force_login(member.user)
    return client


def test_the_dashboard_shows_the_days_figures_equal_to_the_counted_rows(staff_of_day, day):
    merchant = day.shop.storefront.merchant
    # when
    response = staff_of_day.get(INDEX)
    # then
    assert response.status_code == 200
    board = response.context["dashboard"]
    assert board.merchant == merchant
    assert figures_of(board) == counted(merchant)
    # 7 sold (the 6 held for review are reserved, not sold), 4 redeemed, 1 reversed
    shown = figures_of(board)
    assert {key: shown[key] for key in ("in_stock", "issued", "redeemed", "reversed", "review")} == {
        "in_stock": 40 - 7 - 6, "issued": 7, "redeemed": 4, "reversed": 1, "review": 1,
    }
    assert board.totals["issued"] == {1: 7, 7: 7, 30: 7}
    assert board.daily["issued"][-1] == 7 and sum(board.daily["issued"]) == 7
    product = board.products[0]
    assert (product.loaded, product.sold, product.by_state["redeemed"]) == (40, 7, 3)
    html = response.content.decode()
    assert 'data-testid="issued-today">7<' in html
    assert 'data-testid="review-waiting"' in html and reverse("admin:vouchers_issuance_review_queue") in html
    assert 'data-testid="partners"' not in html  # no settlement data: no partner section, no made-up figure


def test_folding_the_events_changes_no_figure_and_twice_folds_nothing_more(day):
    merchant = day.shop.storefront.merchant
    before = merchant_dashboard(merchant=merchant)
    later = timezone.now() + rollup.ROLLUP_LAG + timedelta(seconds=1)
    # when
    first = rollup.fold_all(now=later)
    rows_after_first = rollup_rows()
    second = rollup.fold_all(now=later)
    # then
    assert first[rollup.CODE_EVENTS] > 0 and first[rollup.RISK_ASSESSMENTS] > 0
    assert second == {rollup.CODE_EVENTS: 0, rollup.RISK_ASSESSMENTS: 0}
    assert sorted(rows_after_first) == sorted(
        (batch.pk, metric, n)
        for batch in Batch.objects.filter(product=day.shop.product)
        for metric, n in (("issued", 7), ("redeemed", 4), ("reversed", 1))
    )
    assert rollup_rows() == rows_after_first
    assert DailyDecisionFigure.objects.filter(merchant=merchant).count() > 0
    after = merchant_dashboard(merchant=merchant)
    assert figures_of(after) == figures_of(before) == counted(merchant)
    assert after.daily == before.daily and after.decisions_daily == before.decisions_daily


def test_events_newer_than_the_lag_stay_in_the_live_tail(day):
    # when the fold runs right away, every event is younger than the lag
    moved = rollup.fold_all()
    # then nothing is folded and the watermark stays at zero
    assert moved == {rollup.CODE_EVENTS: 0, rollup.RISK_ASSESSMENTS: 0}
    assert DailyCodeFigure.objects.count() == 0
    assert rollup.watermark(rollup.CODE_EVENTS) == 0
    assert RollupWatermark.objects.get(source=rollup.CODE_EVENTS).last_id == 0


def test_staff_of_another_merchant_see_none_of_its_figures(client, day):
    # given staff of merchant B, which has sold nothing
    other = StaffFactory()
    client.force_login(other.user)
    # when
    response = client.get(INDEX)
    # then
    board = response.context["dashboard"]
    assert board.merchant == other.merchant
    assert figures_of(board) == {"in_stock": 0, "issued": 0, "redeemed": 0, "reversed": 0, "review": 0,
                                 "decisions": 0}
    assert board.products == [] and board.expiring == []
    html = response.content.decode()
    assert day.shop.product.sku not in html and day.shop.storefront.merchant.name not in html


def test_a_superuser_picks_the_merchant(client, day):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    empty = MerchantFactory(name="AAA first by name")
    client.force_login(admin_user)
    # when
    default = client.get(INDEX).context["dashboard"]
    picked = client.get(INDEX, {"merchant": day.shop.storefront.merchant.pk}).context["dashboard"]
    # then
    assert default.merchant == empty
    assert picked.merchant == day.shop.storefront.merchant
    assert figures_of(picked) == counted(day.shop.storefront.merchant)


def test_a_staff_user_of_no_merchant_gets_no_figures(client, day):
    client.force_login(UserFactory(is_staff=True))
    response = client.get(INDEX)
    assert response.status_code == 200
    assert response.context["dashboard"] is None
    assert 'data-testid="no-merchant"' in response.content.decode()


def test_low_stock_and_expiring_batches_are_listed(day):
    merchant = day.shop.storefront.merchant
    ProductAlertSetting.objects.create(product=day.shop.product, low_stock_threshold=50)
    MerchantAlertSetting.objects.create(merchant=merchant, expiring_horizon_days=10)
    batch = Batch.objects.get(product=day.shop.product)
    Batch.objects.filter(pk=batch.pk).update(valid_until=timezone.now() + timedelta(days=5))
    # when
    board = merchant_dashboard(merchant=merchant)
    # then
    assert [p.product for p in board.low_stock] == [day.shop.product]
    assert [(e.batch.pk, e.in_stock, e.unredeemed) for e in board.expiring] == [(batch.pk, 27, 4)]
    assert board.expiring_counts == {7: {"batches": 1, "in_stock": 27, "unredeemed": 4},
                                     30: {"batches": 1, "in_stock": 27, "unredeemed": 4}}
    assert board.expiring_horizon_days == 10


def test_the_dashboard_costs_the_same_queries_whatever_the_days_activity(
    client, day, django_assert_max_num_queries
):
    member = StaffFactory(merchant=day.shop.storefront.merchant)
    client.force_login(member.user)
    with django_assert_max_num_queries(25):
        assert client.get(INDEX).status_code == 200


def test_codes_expiring_by_their_own_date_are_listed_per_batch_and_band(client, day):
    from vouchers.models import Code

    merchant = day.shop.storefront.merchant
    batch = Batch.objects.get(product=day.shop.product)
    now = timezone.now()
    available = list(Code.objects.filter(batch=batch, state="available").values_list("pk", flat=True))
    issued = list(Code.objects.filter(batch=batch, state="issued").values_list("pk", flat=True))
    redeemed = list(Code.objects.filter(batch=batch, state="redeemed").values_list("pk", flat=True))
    # given codes with their own expiry: 3 unsold + 1 sold in 3 days, 2 unsold in 20 days,
    # and codes that do not count: redeemed, expiring after 30 days, already expired
    Code.objects.filter(pk__in=available[:3] + issued[:1]).update(expires_at=now + timedelta(days=3))
    Code.objects.filter(pk__in=available[3:5]).update(expires_at=now + timedelta(days=20))
    Code.objects.filter(pk__in=redeemed[:1]).update(expires_at=now + timedelta(days=3))
    Code.objects.filter(pk__in=available[5:6]).update(expires_at=now + timedelta(days=40))
    Code.objects.filter(pk__in=available[6:7]).update(expires_at=now - timedelta(days=1))
    # when
    board = merchant_dashboard(merchant=merchant, now=now)
    # then
    assert [(e.batch.pk, e.in_stock, e.unredeemed, e.own_expiry) for e in board.expiring] == [
        (batch.pk, 3, 1, True), (batch.pk, 2, 0, True)]
    assert board.expiring_counts == {7: {"batches": 1, "in_stock": 3, "unredeemed": 1},
                                     30: {"batches": 2, "in_stock": 5, "unredeemed": 1}}
    # a batch that itself ends within 30 days counts with all its codes, once
    Batch.objects.filter(pk=batch.pk).update(valid_until=now + timedelta(days=10))
    board = merchant_dashboard(merchant=merchant, now=now)
    assert [(e.batch.pk, e.in_stock, e.unredeemed, e.own_expiry) for e in board.expiring] == [
        (batch.pk, 27, 4, False)]
    # and the page says which date it is
    client.force_login(StaffFactory(merchant=merchant).user)
    Batch.objects.filter(pk=batch.pk).update(valid_until=None)
    assert "own expiry from" in client.get(INDEX).content.decode()


def test_the_expiring_code_figures_rebuilt_by_the_beat_task_give_the_same_rows_without_reading_codes(day):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from vouchers.dashboard.selectors import expiring_batches
    from vouchers.dashboard.tasks import refresh_expiring_codes
    from vouchers.models import Code

    merchant = day.shop.storefront.merchant
    batch = Batch.objects.get(product=day.shop.product)
    now = timezone.now()
    available = list(Code.objects.filter(batch=batch, state="available").values_list("pk", flat=True))
    Code.objects.filter(pk__in=available[:3]).update(expires_at=now + timedelta(days=3))
    Code.objects.filter(pk__in=available[3:5]).update(expires_at=now + timedelta(days=20))
    live = [(e.batch.pk, e.in_stock, e.unredeemed, e.valid_until, e.own_expiry)
            for e in expiring_batches(merchant.pk, now=now, horizon_days=30)]
    # when the beat task has rebuilt the figures
    assert refresh_expiring_codes() == 2
    with CaptureQueriesContext(connection) as queries:
        rows = [(e.batch.pk, e.in_stock, e.unredeemed, e.valid_until, e.own_expiry)
                for e in expiring_batches(merchant.pk, now=now, horizon_days=30)]
    # then the same rows, and no query read the codes
    assert rows == live == [(batch.pk, 3, 0, now + timedelta(days=3), True),
                            (batch.pk, 2, 0, now + timedelta(days=20), True)]
    assert not [q["sql"] for q in queries.captured_queries if '"vouchers_code"' in q["sql"]]
    # a code redeemed or voided leaves them at the next rebuild; a second run changes nothing
    Code.objects.filter(pk=available[0]).update(state="void")
    refresh_expiring_codes()
    assert refresh_expiring_codes() == 2
    assert [e.in_stock for e in expiring_batches(merchant.pk, now=now, horizon_days=30)] == [2, 2]
