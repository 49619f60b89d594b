"""Revealing a code in the admin: permission, reason, rate limit, and an audit row in the same transaction."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse

from tests.factories import ProductFactory, StaffFactory, grant_app_permissions
from vouchers import crypto
from vouchers.audit.models import AuditEntry
from vouchers.audit.services import verify_chains
from vouchers.codeformat import CodeFormat
from vouchers.models import Code, CodeEvent
from vouchers.services.generation import generate_batch


@pytest.fixture
def batch(product):
    return generate_batch(product=product, count=3, fmt=CodeFormat(length=16, group=4))


@pytest.fixture
def code(batch) -> Code:
    return Code.objects.filter(batch=batch).order_by("pk").first()


@pytest.fixture
def staff(merchant):
    member = StaffFactory(merchant=merchant, user__username="alice")
    grant_app_permissions(member.user, "vouchers", "audit")
    return member.user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def reveal_url(code: Code) -> str:
    return reverse("admin:vouchers_code_reveal", args=[code.pk])


def all_plaintexts() -> list[str]:
    return [crypto.decrypt_code(c) for c in Code.objects.all()]


def nothing_recorded() -> tuple[int, int]:
    return AuditEntry.objects.count(), CodeEvent.objects.filter(action="revealed").count()


def test_reveal_with_a_reason_shows_the_code_once_and_audits_it(staff_client, staff, code, merchant, caplog):
    # given
    caplog.set_level(logging.DEBUG)
    plaintext = crypto.decrypt_code(code)
    # when
    response = staff_client.post(reveal_url(code), {"reason": "customer cannot read the card"})
    # then the response shows the code, uncached
    assert response.status_code == 200
    assert plaintext in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    # and one event and one audit row name the code by id and last 4, never the plaintext
    event = CodeEvent.objects.get(action="revealed")
    assert (event.code_id, event.actor, event.details) == (
        code.pk, f"user:{staff.pk}", {"reason": "customer cannot read the card"})
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.merchant_id, entry.user_id, entry.actor_name) == (
        "code_revealed", merchant.pk, staff.pk, "alice")
    assert (entry.target_type, entry.target_id, entry.reason) == (
        "vouchers.code", str(code.pk), "customer cannot read the card")
    assert entry.details == {"batch_id": code.batch_id, "code_id": code.pk, "last4": code.last4,
                             "state": "available"}
    stored = " ".join(str(v) for row in AuditEntry.objects.values() for v in row.values())
    assert plaintext not in stored
    assert plaintext not in caplog.text
    assert verify_chains()[1] == []
    # and the code's own pages never show it
    for url in (reverse("admin:vouchers_code_change", args=[code.pk]), reveal_url(code),
                reverse("admin:vouchers_code_changelist"), reverse("admin:audit_auditentry_changelist"),
                reverse("admin:audit_auditentry_change", args=[entry.pk])):
        page = staff_client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert [p for p in all_plaintexts() if p in html] == []
    assert [p for p in all_plaintexts() for m in mail.outbox if p in m.body] == []


def test_the_code_page_links_to_reveal_only_with_the_permission(staff_client, staff, code):
    page = reverse("admin:vouchers_code_change", args=[code.pk])
    assert reveal_url(code) in staff_client.get(page).content.decode()
    staff.user_permissions.remove(Permission.objects.get(codename="reveal_code"))
    assert reveal_url(code) not in staff_client.get(page).content.decode()


def test_a_reveal_without_a_reason_is_a_form_error_and_reveals_nothing(staff_client, code):
    # when
    response = staff_client.post(reveal_url(code), {"reason": "   "})
    # then
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert crypto.decrypt_code(code) not in response.content.decode()
    assert nothing_recorded() == (0, 0)


def test_staff_without_the_reveal_permission_get_403_and_nothing_is_recorded(staff_client, staff, code):
    staff.user_permissions.remove(Permission.objects.get(codename="reveal_code"))
    response = staff_client.post(reveal_url(code), {"reason": "curious"})
    assert response.status_code == 403
    assert nothing_recorded() == (0, 0)


def test_another_merchants_code_cannot_be_revealed(client, code):
    # given staff of another merchant, holding every permission
    other = StaffFactory(merchant=ProductFactory().merchant)
    grant_app_permissions(other.user, "vouchers")
    client.force_login(other.user)
    # when
    response = client.post(reveal_url(code), {"reason": "curious"})
    # then it is "not found" (a redirect to the admin home), and nothing is recorded
    assert response.status_code == 302
    assert crypto.decrypt_code(code) not in response.content.decode()
    assert nothing_recorded() == (0, 0)


def test_reveals_are_rate_limited_per_user(staff_client, client, settings, batch, merchant):
    # given a limit of 2 reveals per hour
    settings.REVEAL_RATE = "2/h"
    codes = list(Code.objects.filter(batch=batch).order_by("pk"))
    # when the same user reveals three codes
    first = staff_client.post(reveal_url(codes[0]), {"reason": "ticket 1"})
    second = staff_client.post(reveal_url(codes[1]), {"reason": "ticket 2"})
    third = staff_client.post(reveal_url(codes[2]), {"reason": "ticket 3"})
    # then the third is refused, shows nothing and records nothing
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert crypto.decrypt_code(codes[2]) not in third.content.decode()
    assert "You have revealed too many codes recently" in third.content.decode()
    assert list(AuditEntry.objects.order_by("seq").values_list("target_id", flat=True)) == [
        str(codes[0].pk), str(codes[1].pk)]
    # and another staff member of the same merchant still may
    colleague = StaffFactory(merchant=merchant)
    grant_app_permissions(colleague.user, "vouchers")
    client.force_login(colleague.user)
    assert client.post(reveal_url(codes[2]), {"reason": "ticket 3"}).status_code == 200
    assert AuditEntry.objects.count() == 3
