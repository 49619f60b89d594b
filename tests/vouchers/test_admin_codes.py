"""Codes in the admin: last 4 and serial only, never a plaintext, ciphertext or blind index."""

from __future__ import annotations

import base64
import logging

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.factories import ProductFactory
from vouchers import crypto
from vouchers.codeformat import CodeFormat, normalise
from vouchers.models import Code, CodeEvent
from vouchers.services.batch_status import void_batch
from vouchers.services.generation import generate_batch


@pytest.fixture
def batch(product, staff):
    batch = generate_batch(product=product, count=8, fmt=CodeFormat(length=16, prefix="GC", group=4))
    Code.objects.filter(pk=Code.objects.filter(batch=batch).order_by("pk")[0].pk).update(serial="SN-000123")
    void_batch(batch=batch, actor_user=staff, reason="so the codes have events")
    return batch


def secrets_of(batch) -> list[str]:
    """Every form in which a code of the batch could leak: display form, normalised form,
    ciphertext, nonce and blind index (hex and base64)."""
    found: list[str] = []
    codes = list(Code.objects.filter(batch=batch))
    for code in codes:
        display = crypto.decrypt_code(code)
        found += [display, normalise(display, case_sensitive=batch.case_sensitive)]
        for blob in (code.ciphertext, code.nonce, code.blind_index):
            raw = bytes(blob)
            found += [raw.hex(), base64.b64encode(raw).decode()]
    assert len(found) == 8 * len(codes) == 8 * batch.size
    return found


def assert_no_secret(html: str, batch) -> None:
    leaked = [secret for secret in secrets_of(batch) if secret in html]
    assert leaked == []


def test_the_code_list_shows_last4_and_serial_and_no_secret(staff_client, batch):
    # when
    response = staff_client.get(reverse("admin:vouchers_code_changelist"))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert len(response.context["cl"].result_list) == 8
    for code in Code.objects.filter(batch=batch):
        assert f"…{code.last4}" in html
    assert "SN-000123" in html
    assert_no_secret(html, batch)


def test_a_code_page_shows_no_secret(staff_client, batch):
    # given
    code = Code.objects.filter(batch=batch).order_by("pk").first()
    # when
    response = staff_client.get(reverse("admin:vouchers_code_change", args=[code.pk]))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert f"…{code.last4}" in html
    assert "voided" in html  # its events are listed
    assert_no_secret(html, batch)


def test_searching_by_serial_finds_the_code_and_shows_no_secret(staff_client, batch):
    # when
    response = staff_client.get(reverse("admin:vouchers_code_changelist"), {"q": "SN-000123"})
    # then
    assert response.status_code == 200
    assert [c.serial for c in response.context["cl"].result_list] == ["SN-000123"]
    assert_no_secret(response.content.decode(), batch)


@pytest.mark.parametrize("typed", ["display", "lower case without hyphens"])
def test_finding_a_code_by_the_code_itself_opens_its_page_and_echoes_nothing(
    staff_client, batch, typed, caplog
):
    # given a code as a customer would read it out
    caplog.set_level(logging.INFO)
    code = Code.objects.filter(batch=batch).order_by("pk")[3]
    display = crypto.decrypt_code(code)
    raw = display if typed == "display" else display.replace("-", "").lower()
    # when
    response = staff_client.post(reverse("admin:vouchers_code_find"), {"code": raw}, follow=True)
    # then
    assert response.status_code == 200
    assert response.redirect_chain == [(reverse("admin:vouchers_code_change", args=[code.pk]), 302)]
    assert response.context["original"] == code
    assert_no_secret(response.content.decode(), batch)
    assert raw not in response.content.decode()
    assert display not in caplog.text and raw not in caplog.text
    assert f"code {code.pk}" in caplog.text


def test_error_reports_of_the_find_page_hide_the_typed_code(staff_client, batch):
    # when
    response = staff_client.post(reverse("admin:vouchers_code_find"), {"code": "ANY-THING-TYPED"})
    # then Django's error reporter would show the field as stars
    assert response.wsgi_request.sensitive_post_parameters == ("code",)


def test_another_merchants_code_is_not_found_and_not_echoed(staff_client, batch, caplog):
    # given a code of another merchant
    caplog.set_level(logging.INFO)
    other_batch = generate_batch(product=ProductFactory(), count=2, fmt=CodeFormat(length=16))
    other_code = Code.objects.filter(batch=other_batch).first()
    typed = crypto.decrypt_code(other_code)
    # when
    response = staff_client.post(reverse("admin:vouchers_code_find"), {"code": typed})
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert typed not in html
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert shown == ["No code of yours matches what was typed."]
    assert typed not in caplog.text
    assert_no_secret(html, other_batch)


def test_an_unknown_code_is_not_found(staff_client, batch):
    # when
    response = staff_client.post(reverse("admin:vouchers_code_find"), {"code": "NOT-A-REAL-CODE-AT-ALL"})
    # then
    assert response.status_code == 200
    assert "NOT-A-REAL-CODE-AT-ALL" not in response.content.decode()
    assert response.context["form"].is_bound is False


def test_the_code_list_offers_the_find_form_by_post(staff_client, batch):
    # when
    html = staff_client.get(reverse("admin:vouchers_code_changelist")).content.decode()
    # then
    assert f'<form method="post" action="{reverse("admin:vouchers_code_find")}"' in html


def test_codes_cannot_be_added_changed_or_deleted(staff_client, batch):
    # given
    code = Code.objects.filter(batch=batch).order_by("pk").first()
    before = list(Code.objects.filter(batch=batch).order_by("pk").values())
    # when
    add = staff_client.get(reverse("admin:vouchers_code_add"))
    change = staff_client.post(reverse("admin:vouchers_code_change", args=[code.pk]), {"state": "available"})
    delete = staff_client.post(reverse("admin:vouchers_code_delete", args=[code.pk]), {"post": "yes"})
    # then
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert list(Code.objects.filter(batch=batch).order_by("pk").values()) == before


def test_the_code_list_has_no_actions_so_no_export(staff_client, batch):
    # when
    response = staff_client.get(reverse("admin:vouchers_code_changelist"))
    # then
    assert response.context["action_form"] is None


def test_events_are_read_only_records(staff_client, batch):
    # given
    event = CodeEvent.objects.filter(batch_id=batch.pk).order_by("id").first()
    events_before = CodeEvent.objects.count()
    # when
    listing = staff_client.get(reverse("admin:vouchers_codeevent_changelist"))
    page = staff_client.get(reverse("admin:vouchers_codeevent_change", args=[event.pk]))
    delete = staff_client.post(reverse("admin:vouchers_codeevent_delete", args=[event.pk]), {"post": "yes"})
    add = staff_client.get(reverse("admin:vouchers_codeevent_add"))
    # then
    statuses = (listing.status_code, page.status_code, delete.status_code, add.status_code)
    assert statuses == (200, 200, 403, 403)
    assert CodeEvent.objects.count() == events_before
    assert_no_secret(listing.content.decode() + page.content.decode(), batch)
