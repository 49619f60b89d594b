"""Planting canary codes from the admin: plaintexts shown once, in the POST's response, and kept nowhere."""

from __future__ import annotations

import base64
import logging

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.urls import reverse

from tests.factories import StaffFactory, grant_app_permissions
from tests.html import links, readonly_starts
from vouchers import crypto
from vouchers.codeformat import CodeFormat, normalise
from vouchers.models import Batch, Code, CodeEvent
from vouchers.services.batch_status import void_batch
from vouchers.services.generation import generate_batch


@pytest.fixture
def batch(product):
    return generate_batch(product=product, count=6, fmt=CodeFormat(length=16, prefix="GC", group=4))


def plant_url(batch: Batch) -> str:
    return reverse("admin:vouchers_batch_plant_canaries", args=[batch.pk])


def batch_page(batch: Batch) -> str:
    return reverse("admin:vouchers_batch_change", args=[batch.pk])


def canaries_of(batch: Batch) -> list[Code]:
    return list(Code.objects.filter(batch=batch, is_canary=True).order_by("pk"))


def everything_stored() -> str:
    """Every column of every code and event row, every session and admin log entry, as text."""
    rows = [
        bytes(v).decode("latin-1") + base64.b64encode(bytes(v)).decode()
        if isinstance(v, bytes | memoryview) else str(v)
        for model in (Code, CodeEvent) for row in model.objects.values() for v in row.values()
    ]
    sessions = [str(s.get_decoded()) + s.session_data for s in Session.objects.all()]
    log = [f"{e.object_repr} {e.change_message}" for e in LogEntry.objects.all()]
    return "\n".join(rows + sessions + log)


def forms_of(code: str, batch: Batch) -> list[str]:
    return [code, normalise(code, case_sensitive=batch.case_sensitive)]


def test_planted_canaries_are_shown_once_in_the_response_then_never_again(staff_client, staff, batch, caplog):
    # given
    caplog.set_level(logging.DEBUG)
    stock_before = list(Code.objects.filter(batch=batch).order_by("pk").values_list("pk", "state"))
    # when
    response = staff_client.post(plant_url(batch), {"count": "3"})
    # then the page answering the POST shows the three codes (no redirect, no message)
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "admin/vouchers/batch/canaries_planted.html"
    shown = response.context["canaries"]
    html = response.content.decode()
    assert len(shown) == len(set(shown)) == 3
    assert all(code in html for code in shown)
    assert "store them in your own systems as bait" in html.lower().replace("\n  ", " ")
    assert "no-store" in response["Cache-Control"]
    assert [str(m) for m in get_messages(response.wsgi_request)] == []
    # and they are the batch's new canaries, void, outside its stock
    planted = canaries_of(batch)
    assert sorted(crypto.decrypt_code(code) for code in planted) == sorted(shown)
    assert {code.state for code in planted} == {Code.State.VOID}
    stock_after = Code.objects.filter(batch=batch, is_canary=False).order_by("pk").values_list("pk", "state")
    assert list(stock_after) == stock_before
    planted_events = CodeEvent.objects.filter(batch_id=batch.pk, action="canary_planted")
    assert list(planted_events.values_list("actor", flat=True)) == [f"user:{staff.pk}"] * 3
    # and no later page shows them, while the batch page counts them
    later = [staff_client.get(batch_page(batch)), staff_client.get(plant_url(batch)),
             staff_client.get(reverse("admin:vouchers_code_changelist"))]
    assert [page.status_code for page in later] == [200, 200, 200]
    for page in later:
        assert [code for code in shown if code in page.content.decode()] == []
    assert readonly_starts(later[0].content.decode(), '3 <span class="help">')
    assert later[1].context["canary_count"] == 3
    # and no log line holds them, while one says how many were planted
    assert [code for code in shown if code in caplog.text] == []
    assert f"batch {batch.pk}: 3 canary codes planted by user:{staff.pk}" in caplog.text


def test_canaries_are_stored_encrypted_only(staff_client, batch):
    # when
    shown = staff_client.post(plant_url(batch), {"count": "5"}).context["canaries"]
    # then no column, event, session or admin log entry holds a canary in any readable form
    stored = everything_stored()
    assert [form for code in shown for form in forms_of(code, batch) if form in stored] == []
    for code in canaries_of(batch):
        assert bytes(code.blind_index) == crypto.blind_index(
            normalise(crypto.decrypt_code(code), case_sensitive=batch.case_sensitive)
        )
        assert code.last4 == normalise(crypto.decrypt_code(code), case_sensitive=False)[-4:]


def test_the_batch_page_offers_planting_and_shows_no_canary_before(staff_client, batch):
    # when
    response = staff_client.get(batch_page(batch))
    # then
    assert response.status_code == 200
    assert response.context["canary_url"] == plant_url(batch)
    html = response.content.decode()
    assert links(html, plant_url(batch)) == ["Plant canary codes…"]
    assert readonly_starts(html, '0 <span class="help">')


@pytest.mark.parametrize(("count", "error"), [
    ("0", "Ensure this value is greater than or equal to 1."),
    ("101", "Ensure this value is less than or equal to 100."),
    ("", "This field is required."),
])
def test_a_count_out_of_range_is_a_form_error_and_plants_nothing(staff_client, batch, count, error):
    # given
    codes_before, events_before = Code.objects.count(), CodeEvent.objects.count()
    # when
    response = staff_client.post(plant_url(batch), {"count": count})
    # then
    assert response.status_code == 200
    assert response.context["form"].errors == {"count": [error]}
    assert (Code.objects.count(), CodeEvent.objects.count()) == (codes_before, events_before)


def test_a_void_batch_gets_no_canaries(staff_client, staff, batch):
    # given
    void_batch(batch=batch, actor_user=staff, reason="recalled")
    codes_before, events_before = Code.objects.count(), CodeEvent.objects.count()
    # when
    page = staff_client.get(batch_page(batch))
    response = staff_client.post(plant_url(batch), {"count": "2"})
    # then
    assert page.context["canary_url"] is None
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "a void batch is not stocked anywhere; plant canaries in a live one"
    ]
    assert (Code.objects.count(), CodeEvent.objects.count()) == (codes_before, events_before)


def test_staff_of_another_merchant_get_no_access(client, batch):
    # given staff of another merchant with every voucher permission
    outsider = StaffFactory()
    grant_app_permissions(outsider.user, "vouchers")
    client.force_login(outsider.user)
    codes_before, events_before = Code.objects.count(), CodeEvent.objects.count()
    # when
    form = client.get(plant_url(batch))
    planted = client.post(plant_url(batch), {"count": "3"})
    # then the batch does not exist for them
    assert (form.status_code, planted.status_code) == (302, 302)
    assert planted["Location"] == reverse("admin:index")
    assert (Code.objects.count(), CodeEvent.objects.count()) == (codes_before, events_before)


def test_staff_without_the_reveal_permission_get_403(client, merchant, batch):
    # given staff with every voucher permission but reveal_code
    member = StaffFactory(merchant=merchant)
    grant_app_permissions(member.user, "vouchers")
    member.user.user_permissions.remove(Permission.objects.get(codename="reveal_code"))
    client.force_login(member.user)
    codes_before, events_before = Code.objects.count(), CodeEvent.objects.count()
    # when
    page = client.get(batch_page(batch))
    form = client.get(plant_url(batch))
    planted = client.post(plant_url(batch), {"count": "3"})
    # then
    assert page.context["canary_url"] is None
    assert (form.status_code, planted.status_code) == (403, 403)
    assert (Code.objects.count(), CodeEvent.objects.count()) == (codes_before, events_before)
