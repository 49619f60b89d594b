"""Low-stock and expiring-soon alerts: staff are e-mailed once per crossing, never another merchant's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.factories import ProductFactory, StaffFactory, UserFactory
from vouchers.codeformat import CodeFormat
from vouchers.dashboard.alerts import check_alerts
from vouchers.dashboard.models import MerchantAlertSetting, ProductAlertSetting, StockAlert
from vouchers.models import Batch, Code, CodeEvent
from vouchers.services.generation import generate_batch
from vouchers.services.stock import record_move


def take(batch: Batch, count: int) -> None:
    """Test setup: `count` codes of the batch leave stock (void), as a sale would."""
    in_stock = Code.objects.filter(batch=batch, state="available").order_by("pk")
    ids = list(in_stock.values_list("pk", flat=True))
    Code.objects.filter(pk__in=ids[:count]).update(state="void")
    record_move(batch_id=batch.pk, from_state="available", to_state="void", count=count)


@pytest.fixture
def stocked(db):
    member = StaffFactory(user__email="ops@merchant-a.example")
    product = ProductFactory(merchant=member.merchant, sku="GIFT-50")
    batch = generate_batch(product=product, count=10, fmt=CodeFormat(length=16))
    ProductAlertSetting.objects.create(product=product, low_stock_threshold=5)
    MerchantAlertSetting.objects.create(merchant=member.merchant, expiring_horizon_days=0)
    return member, product, batch


def test_crossing_the_low_stock_threshold_mails_the_staff_once(stocked):
    member, product, batch = stocked
    other_merchant_staff = StaffFactory(user__email="ops@merchant-b.example")
    take(batch, 6)  # 4 left, below 5
    # when the beat task runs twice
    first = check_alerts()
    second = check_alerts()
    # then one alert, one e-mail, to this merchant's staff only
    assert first == {"low_stock": 1, "expiring": 0}
    assert second == {"low_stock": 0, "expiring": 0}
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["ops@merchant-a.example"], f"[{member.merchant.name}] Low stock: GIFT-50 has 4 codes left")
    ]
    assert other_merchant_staff.user.email not in mail.outbox[0].to
    alert = StockAlert.objects.get()
    assert (alert.kind, alert.product, alert.level, alert.threshold) == ("low_stock", product, 4, 5)
    assert alert.notified_at is not None and alert.cleared_at is None


def test_stock_back_above_the_threshold_closes_the_alert_and_the_next_crossing_mails_again(stocked):
    member, product, batch = stocked
    take(batch, 6)
    check_alerts()
    # when stock is loaded again, then sold down again
    fresh = generate_batch(product=product, count=10, fmt=CodeFormat(length=16))
    check_alerts()
    take(fresh, 10)
    check_alerts()
    # then two alerts, the first closed; two e-mails
    alerts_raised = list(StockAlert.objects.order_by("pk").values_list("level", "cleared_at"))
    assert len(alerts_raised) == 2
    assert alerts_raised[0][1] is not None and alerts_raised[1] == (4, None)
    assert len(mail.outbox) == 2


def test_a_batch_ending_within_the_horizon_is_announced_once_with_its_codes_left(stocked):
    member, product, batch = stocked
    MerchantAlertSetting.objects.filter(merchant=member.merchant).update(expiring_horizon_days=14)
    ProductAlertSetting.objects.filter(product=product).update(low_stock_threshold=0)
    Batch.objects.filter(pk=batch.pk).update(valid_until=timezone.now() + timedelta(days=3))
    # when
    assert check_alerts() == {"low_stock": 0, "expiring": 1}
    assert check_alerts() == {"low_stock": 0, "expiring": 0}
    # then
    alert = StockAlert.objects.get()
    assert (alert.kind, alert.batch_id, alert.level, alert.threshold) == ("expiring", batch.pk, 10, 14)
    assert len(mail.outbox) == 1
    assert f"/admin/vouchers/batch/{batch.pk}/change/" in mail.outbox[0].body
    for message in mail.outbox:  # no code in any e-mail
        for code in Code.objects.filter(batch=batch):
            assert code.last4 not in message.subject


def test_low_stock_reaches_a_storefront_once_through_the_webhook_scan_only(stocked, settings):
    # given a storefront endpoint of the merchant subscribed to stock.low
    from tests.factories import StorefrontFactory
    from vouchers.webhooks.models import WebhookEvent
    from vouchers.webhooks.services import endpoints
    from vouchers.webhooks.services.stock_events import emit_stock_low

    member, product, batch = stocked
    settings.WEBHOOK_STOCK_LOW_THRESHOLD = 5
    endpoints.create_endpoint(url="http://127.0.0.1:9/", events=["stock.low"],
                              storefront=StorefrontFactory(merchant=member.merchant))
    take(batch, 6)  # 4 left
    # when the staff alert is raised, then the webhook scan runs
    assert check_alerts() == {"low_stock": 1, "expiring": 0}
    events_after_alert = WebhookEvent.objects.count()
    assert emit_stock_low() == 1
    # then the alert wrote no event; the scan wrote exactly one, for this product
    assert events_after_alert == 0
    assert list(WebhookEvent.objects.values_list("type", "ordering_key")) == [
        ("stock.low", f"product:{product.pk}")]


def test_a_threshold_of_zero_never_alerts(stocked):
    _, product, batch = stocked
    ProductAlertSetting.objects.filter(product=product).update(low_stock_threshold=0)
    take(batch, 10)
    assert check_alerts() == {"low_stock": 0, "expiring": 0}
    assert StockAlert.objects.count() == 0 and mail.outbox == []


# --- extend validity -------------------------------------------------------------------


@pytest.fixture
def batch_admin(client, stocked):
    from tests.factories import grant_app_permissions

    member, product, batch = stocked
    grant_app_permissions(member.user, "vouchers")
    client.force_login(member.user)
    return client


def test_extending_a_batchs_validity_records_who_and_why(batch_admin, stocked):
    member, _, batch = stocked
    old_end = timezone.now().replace(microsecond=0, second=0) + timedelta(days=2)
    Batch.objects.filter(pk=batch.pk).update(valid_until=old_end)
    # when
    response = batch_admin.post("/admin/vouchers/batch/", {
        "action": "extend_validity_selected", "_selected_action": [batch.pk], "confirm": "yes",
        "valid_until": "2031-01-31T12:00", "reason": "supplier agreed to extend",
    })
    # then
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.valid_until.isoformat() == "2031-01-31T12:00:00+00:00"
    event = CodeEvent.objects.get(batch_id=batch.pk, action="batch_validity_extended")
    assert event.actor == f"user:{member.user.pk}"
    assert event.details == {
        "reason": "supplier agreed to extend", "from": old_end.isoformat(), "to": "2031-01-31T12:00:00+00:00",
    }


def test_an_earlier_end_or_a_blank_reason_is_refused_and_changes_nothing(batch_admin, stocked):
    _, _, batch = stocked
    end = timezone.now().replace(microsecond=0, second=0) + timedelta(days=30)
    Batch.objects.filter(pk=batch.pk).update(valid_until=end)
    events = CodeEvent.objects.count()
    # when: an earlier end, then a blank reason
    earlier = batch_admin.post("/admin/vouchers/batch/", {
        "action": "extend_validity_selected", "_selected_action": [batch.pk], "confirm": "yes",
        "valid_until": (end - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"), "reason": "typo",
    })
    blank = batch_admin.post("/admin/vouchers/batch/", {
        "action": "extend_validity_selected", "_selected_action": [batch.pk], "confirm": "yes",
        "valid_until": "2031-01-31T12:00", "reason": "",
    })
    # then
    assert earlier.status_code == 302
    assert blank.status_code == 200
    assert blank.context["form"].errors == {"reason": ["This field is required."]}
    batch.refresh_from_db()
    assert batch.valid_until == end
    assert CodeEvent.objects.count() == events


def test_a_user_without_the_batch_change_permission_cannot_extend(client, stocked):
    member, _, batch = stocked
    viewer = UserFactory(is_staff=True)
    StaffFactory(user=viewer, merchant=member.merchant)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_batch"))
    client.force_login(viewer)
    before = Batch.objects.get(pk=batch.pk).valid_until
    response = client.post("/admin/vouchers/batch/", {
        "action": "extend_validity_selected", "_selected_action": [batch.pk], "confirm": "yes",
        "valid_until": "2031-01-31T12:00", "reason": "x",
    })
    assert response.status_code in (200, 302)
    assert Batch.objects.get(pk=batch.pk).valid_until == before
    assert not CodeEvent.objects.filter(action="batch_validity_extended").exists()
