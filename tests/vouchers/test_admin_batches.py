"""Batches in the admin: stock by state, pause / resume / void, and the generate form."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    ProductFactory,
    StaffFactory,
    StorefrontFactory,
    UserFactory,
)
from tests.html import cell, table_row
from vouchers.codeformat import UNAMBIGUOUS_ALPHABET, CodeFormat
from vouchers.models import Batch, Code, CodeEvent, Issuance
from vouchers.selectors import counted_stock_by_state, stock_by_state
from vouchers.services.generation import generate_batch
from vouchers.services.stock import record_move

CHANGELIST = "admin:vouchers_batch_changelist"


def make_batch(product, count: int = 6) -> Batch:
    return generate_batch(product=product, count=count, fmt=CodeFormat(length=16))


def sell(batch: Batch, *, count: int, to_state: str = Code.State.ISSUED) -> None:
    """Test setup: move `count` codes in stock to `to_state` under one issuance."""
    issuance = Issuance.objects.create(
        storefront=StorefrontFactory(merchant=batch.product.merchant), product=batch.product,
        quantity=count, status=Issuance.Status.ISSUED,
    )
    in_stock = Code.objects.filter(batch=batch, state=Code.State.AVAILABLE).order_by("pk")
    ids = list(in_stock.values_list("pk", flat=True)[:count])
    now = timezone.now()
    Code.objects.filter(pk__in=ids).update(
        state=to_state, issuance=issuance, redeemed_at=now if to_state == Code.State.REDEEMED else None
    )
    record_move(batch_id=batch.pk, from_state=Code.State.AVAILABLE, to_state=to_state, count=count)


def action_data(action: str, *batches: Batch, **extra) -> dict:
    """The POST of a changelist action over `batches`."""
    return {"action": action, "_selected_action": [b.pk for b in batches], **extra}


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def state_of(batch: Batch) -> dict:
    """What a refused status change must leave as it was."""
    return {
        "status": Batch.objects.get(pk=batch.pk).status,
        "events": CodeEvent.objects.filter(batch_id=batch.pk).count(),
        "stock": stock_by_state([batch.pk])[batch.pk],
        "counted": counted_stock_by_state(batch.pk),
    }


# --- stock by state -------------------------------------------------------------------


def test_the_batch_list_shows_stock_by_state_equal_to_the_counted_codes(staff_client, product):
    # given two batches with codes in several states
    first, second = make_batch(product, count=6), make_batch(product, count=4)
    sell(first, count=2)
    sell(first, count=1, to_state=Code.State.REDEEMED)
    sell(second, count=1, to_state=Code.State.RESERVED)
    # when
    response = staff_client.get(reverse(CHANGELIST))
    # then
    assert response.status_code == 200
    rows = {batch.pk: batch.stock for batch in response.context["cl"].result_list}
    assert rows == {first.pk: counted_stock_by_state(first.pk), second.pk: counted_stock_by_state(second.pk)}
    assert rows[first.pk] == {"available": 3, "reserved": 0, "issued": 2, "redeemed": 1, "void": 0}
    html = response.content.decode()
    for state, count in rows[first.pk].items():
        assert str(count) in cell(html, f"stock_{state}")
        assert sorted(cell(html, f"stock_{state}")) == sorted(str(stock[state]) for stock in rows.values())


def test_the_batch_page_shows_stock_by_state(staff_client, product):
    # given
    batch = make_batch(product, count=5)
    sell(batch, count=2)
    # when
    response = staff_client.get(reverse("admin:vouchers_batch_change", args=[batch.pk]))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    for state, count in counted_stock_by_state(batch.pk).items():
        assert table_row(html, state) == [[str(count)]]
    assert table_row(html, "total") == [["5"]]


def test_the_batch_list_costs_the_same_queries_for_one_batch_or_twenty(
    staff_client, product, django_assert_max_num_queries, django_assert_num_queries
):
    # given one batch: count the queries of the page
    make_batch(product, count=1)
    with django_assert_max_num_queries(15) as one_batch:
        staff_client.get(reverse(CHANGELIST))
    # when there are twenty
    for _ in range(19):
        make_batch(product, count=1)
    # then the page costs exactly as many queries (stock for the whole page in one query)
    with django_assert_num_queries(len(one_batch.captured_queries)):
        response = staff_client.get(reverse(CHANGELIST))
    assert len(response.context["cl"].result_list) == 20


# --- pause / resume / void ------------------------------------------------------------


def test_pause_and_resume_actions_change_the_status_and_write_events(staff_client, staff, product):
    # given
    batch = make_batch(product)
    stock_before = stock_by_state([batch.pk])[batch.pk]
    # when
    paused = staff_client.post(reverse(CHANGELIST), action_data("pause_selected", batch))
    status_after_pause = Batch.objects.get(pk=batch.pk).status
    resumed = staff_client.post(reverse(CHANGELIST), action_data("resume_selected", batch))
    # then
    assert (paused.status_code, resumed.status_code) == (302, 302)
    assert status_after_pause == Batch.Status.PAUSED
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.ACTIVE
    events = list(CodeEvent.objects.filter(batch_id=batch.pk, action__in=["batch_paused", "batch_resumed"])
                  .order_by("id").values_list("action", "from_state", "to_state", "actor"))
    assert events == [
        ("batch_paused", "active", "paused", f"user:{staff.pk}"),
        ("batch_resumed", "paused", "active", f"user:{staff.pk}"),
    ]
    assert stock_by_state([batch.pk])[batch.pk] == stock_before


def test_resuming_an_active_batch_is_refused_with_a_message_and_changes_nothing(staff_client, product):
    # given
    batch = make_batch(product)
    before = state_of(batch)
    # when
    response = staff_client.post(
        reverse(CHANGELIST), {"action": "resume_selected", "_selected_action": [batch.pk]}, follow=True
    )
    # then
    assert response.status_code == 200
    assert messages_of(response) == [f"Batch {batch.pk}: a batch that is active cannot be resumed."]
    assert state_of(batch) == before


def test_void_action_asks_for_a_reason_before_voiding(staff_client, product):
    # given
    batch = make_batch(product, count=4)
    before = state_of(batch)
    # when the action is chosen
    response = staff_client.post(reverse(CHANGELIST), action_data("void_selected", batch))
    # then a confirmation page, and nothing voided yet
    assert response.status_code == 200
    assert "Voiding cannot be undone" in response.content.decode()
    assert state_of(batch) == before


def test_void_confirmed_without_a_reason_is_a_form_error_and_changes_nothing(staff_client, product):
    # given
    batch = make_batch(product, count=4)
    before = state_of(batch)
    # when
    response = staff_client.post(
        reverse(CHANGELIST),
        {"action": "void_selected", "_selected_action": [batch.pk], "confirm": "yes", "reason": ""},
    )
    # then
    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert state_of(batch) == before


def test_void_action_voids_stock_and_keeps_sold_codes(staff_client, staff, product):
    # given
    batch = make_batch(product, count=6)
    sell(batch, count=2)
    # when
    response = staff_client.post(
        reverse(CHANGELIST),
        {"action": "void_selected", "_selected_action": [batch.pk], "confirm": "yes", "reason": "recalled"},
        follow=True,
    )
    # then
    assert response.status_code == 200
    assert messages_of(response) == [f"Batch {batch.pk} voided: 4 codes in stock became void."]
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.VOID
    expected = {"available": 0, "reserved": 0, "issued": 2, "redeemed": 0, "void": 4}
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == expected
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="voided").count() == 4
    assert CodeEvent.objects.get(batch_id=batch.pk, action="batch_voided").details == {
        "reason": "recalled", "codes_voided": 4,
    }


def test_voiding_a_void_batch_from_its_page_is_refused_with_a_message(staff_client, product):
    # given
    batch = make_batch(product, count=3)
    url = reverse("admin:vouchers_batch_status", args=[batch.pk, "void"])
    staff_client.post(url, {"reason": "first"}, follow=True)
    before = state_of(batch)
    # when
    response = staff_client.post(url, {"reason": "again"}, follow=True)
    # then
    assert response.status_code == 200
    assert messages_of(response) == [f"Batch {batch.pk}: a batch that is void cannot be voided."]
    assert state_of(batch) == before


def test_the_batch_page_offers_the_status_changes_its_status_allows(staff_client, product):
    # given
    batch = make_batch(product)
    page = reverse("admin:vouchers_batch_change", args=[batch.pk])
    # when
    active_links = staff_client.get(page).context["status_links"]
    staff_client.post(reverse("admin:vouchers_batch_status", args=[batch.pk, "pause"]))
    paused_links = staff_client.get(page).context["status_links"]
    # then
    assert [label for label, _ in active_links] == ["Pause", "Void"]
    assert [label for label, _ in paused_links] == ["Resume", "Void"]
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PAUSED


def test_the_status_page_confirms_before_changing(staff_client, product):
    # given
    batch = make_batch(product)
    before = state_of(batch)
    # when
    response = staff_client.get(reverse("admin:vouchers_batch_status", args=[batch.pk, "pause"]))
    # then
    assert response.status_code == 200
    assert response.context["stock"] == counted_stock_by_state(batch.pk)
    assert state_of(batch) == before


def test_an_unknown_status_change_is_not_found(staff_client, product):
    # given
    batch = make_batch(product)
    before = state_of(batch)
    # when
    response = staff_client.post(reverse("admin:vouchers_batch_status", args=[batch.pk, "delete"]))
    # then
    assert response.status_code == 404
    assert state_of(batch) == before


def test_staff_without_the_change_permission_cannot_pause(client, merchant, product):
    # given staff who may only view batches
    member = StaffFactory(merchant=merchant)
    from django.contrib.auth.models import Permission

    member.user.user_permissions.add(Permission.objects.get(codename="view_batch"))
    member.user.refresh_from_db()
    client.force_login(member.user)
    batch = make_batch(product)
    before = state_of(batch)
    # when
    response = client.post(reverse("admin:vouchers_batch_status", args=[batch.pk, "pause"]))
    # then
    assert response.status_code == 403
    assert state_of(batch) == before


def test_batches_are_never_deleted_or_added_through_the_raw_form(staff_client, product):
    # given
    batch = make_batch(product)
    # when
    add = staff_client.get(reverse("admin:vouchers_batch_add"))
    delete = staff_client.post(reverse("admin:vouchers_batch_delete", args=[batch.pk]), {"post": "yes"})
    # then
    assert (add.status_code, delete.status_code) == (403, 403)
    assert Batch.objects.filter(pk=batch.pk).exists()


# --- generate form --------------------------------------------------------------------


def generate_data(product, **overrides) -> dict:
    data = {
        "product": product.pk, "count": "25", "length": "", "alphabet": UNAMBIGUOUS_ALPHABET,
        "prefix": "GC", "group": "4", "reference": "spring promo",
        "valid_from_0": "", "valid_from_1": "", "valid_until_0": "", "valid_until_1": "",
    }
    return {**data, **overrides}


def test_the_generate_form_creates_a_batch_and_opens_it(staff_client, staff, product):
    # when
    response = staff_client.post(
        reverse("admin:vouchers_batch_generate"),
        generate_data(product, check_char="on", valid_until_0="2031-01-31", valid_until_1="23:59:00"),
    )
    # then
    batch = Batch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:vouchers_batch_change", args=[batch.pk])
    assert (batch.product_id, batch.size, batch.source, batch.created_by_id) == (
        product.pk, 25, Batch.Source.GENERATED, staff.pk,
    )
    assert batch.reference == "spring promo"
    assert batch.format == {
        "length": 17, "alphabet": UNAMBIGUOUS_ALPHABET, "prefix": "GC", "group": 4, "check_char": True,
    }
    assert batch.valid_until.isoformat() == "2031-01-31T23:59:00+00:00"
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == {
        "available": 25, "reserved": 0, "issued": 0, "redeemed": 0, "void": 0,
    }


def test_the_generate_page_opens_from_the_batch_list(staff_client, product):
    # when
    listing = staff_client.get(reverse(CHANGELIST)).content.decode()
    page = staff_client.get(reverse("admin:vouchers_batch_generate"))
    # then
    assert reverse("admin:vouchers_batch_generate") in listing
    assert reverse("admin:vouchers_batch_import") in listing
    assert page.status_code == 200
    assert list(page.context["form"].fields["product"].queryset) == [product]


def test_too_guessable_settings_are_a_form_error_and_create_nothing(staff_client, product):
    # given 4 characters of 31: about 10^6 codes for 25 codes, far below the 10^13 needed
    batches_before, codes_before = Batch.objects.count(), Code.objects.count()
    # when
    response = staff_client.post(reverse("admin:vouchers_batch_generate"), generate_data(product, length="4"))
    # then
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert len(errors) == 1
    assert errors[0].startswith("These settings give a code space of about 10^6.0 for 25 codes")
    assert errors[0] in response.content.decode().replace("&#x27;", "'")
    assert (Batch.objects.count(), Code.objects.count()) == (batches_before, codes_before)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"alphabet": "AAB"}, "__all__", "the alphabet needs at least 2 distinct characters"),
        ({"prefix": "A-B"}, "__all__", "the prefix may hold printable ASCII only, no spaces or hyphens"),
        ({"count": "0"}, "count", "Ensure this value is greater than or equal to 1."),
        (
            {"valid_from_0": "2030-01-02", "valid_from_1": "00:00", "valid_until_0": "2030-01-01",
             "valid_until_1": "00:00"},
            "valid_until", "The validity window must end after it starts.",
        ),
    ],
)
def test_bad_generation_settings_are_form_errors_and_create_nothing(
    staff_client, product, overrides, field, message
):
    # when
    url = reverse("admin:vouchers_batch_generate")
    response = staff_client.post(url, generate_data(product, **overrides))
    # then
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors == {field: [message]}
    assert Batch.objects.count() == 0


def test_an_inactive_product_is_not_offered_for_new_codes(staff_client, merchant):
    # given
    inactive = ProductFactory(merchant=merchant, is_active=False)
    # when
    response = staff_client.post(reverse("admin:vouchers_batch_generate"), generate_data(inactive))
    # then
    assert response.status_code == 200
    assert "product" in response.context["form"].errors
    assert Batch.objects.count() == 0


def test_a_superuser_sees_the_merchant_column(client, product):
    # given
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    admin_user.refresh_from_db()
    client.force_login(admin_user)
    make_batch(product)
    # when
    response = client.get(reverse(CHANGELIST))
    # then
    assert response.status_code == 200
    assert "merchant" in response.context["cl"].list_display
    assert product.merchant.name in response.content.decode()
