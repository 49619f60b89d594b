"""Staff acts write an audit entry in their own transaction: keys, batch status, review decisions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import StaffFactory, StorefrontFactory, grant_app_permissions
from tests.vouchers.api.conftest import make_shop
from vouchers.audit.models import AuditEntry
from vouchers.audit.services import verify_chains
from vouchers.codeformat import CodeFormat
from vouchers.models import Issuance, StorefrontAPIKey
from vouchers.services.api_keys import APIKeyAlreadyRevoked, create_storefront_key, revoke_storefront_key
from vouchers.services.batch_status import InvalidBatchTransition, pause_batch, resume_batch, void_batch
from vouchers.services.generation import generate_batch
from vouchers.services.reviews import approve_review, deny_review


@pytest.fixture
def user(merchant):
    return StaffFactory(merchant=merchant, user__username="bob").user


def entries() -> list[tuple]:
    return list(AuditEntry.objects.order_by("chain", "seq").values_list(
        "action", "merchant_id", "actor_name", "target_type", "reason"))


def test_creating_and_revoking_a_key_are_audited_by_prefix(merchant, user):
    # given
    storefront = StorefrontFactory(merchant=merchant)
    # when
    api_key, plaintext = create_storefront_key(storefront=storefront, name="till 1", created_by=user)
    revoke_storefront_key(api_key=api_key, revoked_by=user, reason="till stolen")
    # then
    assert entries() == [
        ("api_key_created", merchant.pk, "bob", "vouchers.storefrontapikey", ""),
        ("api_key_revoked", merchant.pk, "bob", "vouchers.storefrontapikey", "till stolen"),
    ]
    created = AuditEntry.objects.get(action="api_key_created")
    assert created.details == {"name": "till 1", "prefix": api_key.prefix, "storefront_id": storefront.pk}
    assert created.target_id == api_key.prefix  # the key's id holds its hash: not kept here
    stored = " ".join(str(v) for row in AuditEntry.objects.values() for v in row.values())
    assert plaintext not in stored
    assert plaintext.partition(".")[2] not in stored
    # and a refused second revocation writes nothing
    with pytest.raises(APIKeyAlreadyRevoked):
        revoke_storefront_key(api_key=StorefrontAPIKey.objects.get(), revoked_by=user)
    assert len(entries()) == 2
    assert verify_chains()[1] == []


def test_batch_status_changes_are_audited_and_a_refusal_writes_nothing(product, merchant, user):
    # given
    batch = generate_batch(product=product, count=4, fmt=CodeFormat(length=16))
    # when
    pause_batch(batch=batch, actor_user=user)
    resume_batch(batch=batch, actor_user=user)
    with pytest.raises(InvalidBatchTransition):
        resume_batch(batch=batch, actor_user=user)
    void_batch(batch=batch, actor_user=user, reason="supplier recalled the file")
    # then
    assert entries() == [
        ("batch_paused", merchant.pk, "bob", "vouchers.batch", ""),
        ("batch_resumed", merchant.pk, "bob", "vouchers.batch", ""),
        ("batch_voided", merchant.pk, "bob", "vouchers.batch", "supplier recalled the file"),
    ]
    voided = AuditEntry.objects.get(action="batch_voided")
    assert voided.details == {"batch_id": batch.pk, "codes_voided": 4, "from": "active", "to": "void"}
    assert verify_chains()[1] == []


def test_review_decisions_are_audited(db):
    # given two orders held for review (a new customer's order of 6 codes)
    shop = make_shop(codes=20)
    reviewer = StaffFactory(merchant=shop.product.merchant, user__username="rita").user
    held = []
    for customer in ("c1", "c2"):
        response = shop.client.issue(shop.product.sku, quantity=6, customer=customer)
        assert response.json()["status"] == "review"
        held.append(Issuance.objects.get(pk=response.json()["id"]))
    merchant_id = shop.product.merchant_id
    # when
    approve_review(issuance_id=held[0].pk, reviewer=reviewer, merchant_id=merchant_id)
    deny_review(issuance_id=held[1].pk, reviewer=reviewer, merchant_id=merchant_id, reason="bot pattern")
    # then
    assert [e for e in entries() if e[0].startswith("review_")] == [
        ("review_approved", merchant_id, "rita", "vouchers.issuance", ""),
        ("review_denied", merchant_id, "rita", "vouchers.issuance", "bot pattern"),
    ]
    assert AuditEntry.objects.get(action="review_denied").details == {
        "issuance_id": str(held[1].pk), "product_id": shop.product.pk, "quantity": 6}


def test_staff_of_another_merchant_see_none_of_the_audit_rows(client, merchant, user):
    # given an audited act of merchant A
    storefront = StorefrontFactory(merchant=merchant)
    create_storefront_key(storefront=storefront, name="till 1", created_by=user)
    entry = AuditEntry.objects.get()
    # and staff of merchant B with every permission
    other = StaffFactory(user__username="mallory")
    grant_app_permissions(other.user, "vouchers", "audit")
    create_storefront_key(storefront=StorefrontFactory(merchant=other.merchant), name="own key",
                          created_by=other.user)
    client.force_login(other.user)
    # when
    listing = client.get(reverse("admin:audit_auditentry_changelist"))
    detail = client.get(reverse("admin:audit_auditentry_change", args=[entry.pk]))
    # then B sees only its own entry, and A's is "not found"
    assert listing.status_code == 200
    assert [e.pk for e in listing.context["cl"].result_list] == [
        AuditEntry.objects.get(merchant=other.merchant).pk]
    assert "till 1" not in listing.content.decode()
    assert detail.status_code == 302
    # and A's staff see their own
    grant_app_permissions(user, "audit")
    client.force_login(user)
    mine = client.get(reverse("admin:audit_auditentry_changelist"))
    assert [e.pk for e in mine.context["cl"].result_list] == [entry.pk]


def test_the_audit_log_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, merchant, user):
    create_storefront_key(storefront=StorefrontFactory(merchant=merchant), name="k", created_by=user)
    entry = AuditEntry.objects.get()
    assert admin_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert admin_client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]),
                             {"post": "yes"}).status_code == 403
    page = admin_client.post(reverse("admin:audit_auditentry_change", args=[entry.pk]), {"reason": "x"})
    assert page.status_code == 403
    assert AuditEntry.objects.get().reason == ""
