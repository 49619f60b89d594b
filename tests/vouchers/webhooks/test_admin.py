"""Webhook endpoints and deliveries in the admin: scoped to the merchant, secret shown once."""

import pytest
from django.urls import reverse

from tests.factories import StaffFactory, grant_app_permissions
from tests.vouchers.webhooks.conftest import make_shop
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint
from vouchers.webhooks.services import endpoints, outbox
from vouchers.webhooks.services.delivery import live_secrets

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    return make_shop(codes=0)


@pytest.fixture
def staff_client(client, shop):
    member = StaffFactory(merchant=shop.storefront.merchant)
    grant_app_permissions(member.user, "vouchers", "webhooks")
    client.force_login(member.user)
    return client


def test_staff_add_an_endpoint_and_see_its_secret_once(staff_client, shop, receiver):
    # when
    response = staff_client.post(reverse("admin:webhooks_webhookendpoint_add"), {
        "storefront": shop.storefront.pk, "url": receiver.url, "events": ["stock.low", "code.redeemed"],
        "enabled": "on", "description": "crm",
    })
    # then the answer to the POST shows the secret that signs for the new endpoint
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert live_secrets(endpoint) == [secret]
    assert (endpoint.storefront_id, endpoint.merchant_id, endpoint.events) == (
        shop.storefront.pk, shop.storefront.merchant_id, ["code.redeemed", "stock.low"])
    page = staff_client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert secret not in page.content.decode()


def test_another_merchants_storefront_is_refused_and_nothing_is_stored(staff_client, receiver):
    other = make_shop(codes=0)
    response = staff_client.post(reverse("admin:webhooks_webhookendpoint_add"), {
        "storefront": other.storefront.pk, "url": receiver.url, "events": ["stock.low"], "enabled": "on",
    })
    assert response.status_code == 200
    assert "storefront" in response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.count() == 0


def test_a_private_url_is_a_form_error_under_the_production_rules(staff_client, shop, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = staff_client.post(reverse("admin:webhooks_webhookendpoint_add"), {
        "storefront": shop.storefront.pk, "url": "https://127.0.0.1/in", "events": ["stock.low"],
    })
    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.count() == 0


def test_the_delivery_log_is_scoped_and_redeliver_sends_again(staff_client, shop, receiver, eager_celery,
                                                              django_capture_on_commit_callbacks):
    # given one delivery of ours (already sent) and one of another merchant
    mine = endpoints.create_endpoint(url=receiver.url, events=["stock.low"], storefront=shop.storefront)
    other = make_shop(codes=0)
    endpoints.create_endpoint(url=receiver.url, events=["stock.low"], storefront=other.storefront)
    outbox.forget_subscriptions()
    for owner in (shop, other):
        outbox.emit("stock.low", owners=[("storefront", owner.storefront.pk)], merchant_id=None,
                    data=lambda: {"sku": "X"})
    ours = WebhookDelivery.objects.get(endpoint=mine.endpoint)
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    # when staff look at the log and redeliver theirs
    listed = staff_client.get(changelist)
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(changelist, {"action": "redeliver", "_selected_action": [ours.pk]})
    # then they see only their own, and it was sent
    assert [row.pk for row in listed.context["cl"].result_list] == [ours.pk]
    ours.refresh_from_db()
    assert (ours.status, ours.attempts, ours.last_status_code) == ("succeeded", 1, 200)
    assert len(receiver.requests) == 1


def test_rotating_a_secret_shows_the_new_one_once_and_keeps_the_old_one_signing(staff_client, shop, receiver):
    created = endpoints.create_endpoint(url=receiver.url, events=["stock.low"], storefront=shop.storefront)
    response = staff_client.post(reverse("admin:webhooks_webhookendpoint_changelist"), {
        "action": "rotate_secret", "_selected_action": [created.endpoint.pk],
    })
    assert response.status_code == 200
    new_secret = response.context["secret"]
    assert new_secret != created.secret
    assert live_secrets(WebhookEndpoint.objects.get()) == [new_secret, created.secret]


def test_a_superuser_adds_a_partners_endpoint_and_sees_its_secret_once(admin_client, receiver):
    from tests.factories import PartnerFactory

    partner = PartnerFactory()
    response = admin_client.post(reverse("admin:webhooks_webhookendpoint_add"), {
        "partner": partner.pk, "url": receiver.url, "events": ["dispute.resolved", "statement.issued"],
        "enabled": "on",
    })
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.partner_id, endpoint.storefront_id, endpoint.merchant_id) == (partner.pk, None, None)
    assert endpoint.events == ["statement.issued", "dispute.resolved"]
    assert live_secrets(endpoint) == [response.context["secret"]]
    # and editing it keeps to the events a partner receives
    change = reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
    assert admin_client.get(change).status_code == 200
    refused = admin_client.post(change, {"url": receiver.url, "events": ["stock.low"], "enabled": "on"})
    assert "events" in refused.context["adminform"].form.errors
    edited = admin_client.post(change, {"url": receiver.url, "events": ["code.redeemed"], "enabled": "on"})
    assert edited.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.events == ["code.redeemed"]


@pytest.mark.parametrize("owners, events, field", [
    ("both", ["code.redeemed"], "storefront"),
    ("neither", ["code.redeemed"], "storefront"),
    ("partner", ["stock.low"], "events"),
    ("storefront", ["statement.issued"], "events"),
])
def test_an_endpoint_needs_one_owner_and_events_it_can_receive(admin_client, shop, receiver, owners, events,
                                                               field):
    from tests.factories import PartnerFactory

    partner = PartnerFactory()
    chosen = {"both": {"storefront": shop.storefront.pk, "partner": partner.pk}, "neither": {},
              "partner": {"partner": partner.pk}, "storefront": {"storefront": shop.storefront.pk}}[owners]
    response = admin_client.post(reverse("admin:webhooks_webhookendpoint_add"), {
        **chosen, "url": receiver.url, "events": events, "enabled": "on",
    })
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.count() == 0


def test_staff_are_not_offered_partners_and_do_not_see_a_partners_endpoint(staff_client, receiver):
    from tests.factories import PartnerFactory

    partner = PartnerFactory()
    endpoints.create_endpoint(url=receiver.url, events=["statement.issued"], partner_id=partner.pk)
    form = staff_client.get(reverse("admin:webhooks_webhookendpoint_add")).context["adminform"].form
    assert "partner" not in form.fields
    response = staff_client.post(reverse("admin:webhooks_webhookendpoint_add"), {
        "partner": partner.pk, "url": receiver.url, "events": ["code.redeemed"], "enabled": "on",
    })
    assert "storefront" in response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.count() == 1
    changelist = staff_client.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    assert changelist.context["cl"].result_count == 0
