"""Storefront API keys in the admin: shown exactly once, stored as a hash, revoked by an action."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.sessions.models import Session
from django.urls import reverse

from tests.factories import StorefrontFactory
from vouchers.models import StorefrontAPIKey


@pytest.fixture
def storefront(merchant):
    return StorefrontFactory(merchant=merchant)


def create_key_url(storefront) -> str:
    return reverse("admin:vouchers_storefront_create_api_key", args=[storefront.pk])


def everything_stored_about_keys() -> str:
    """Every column of every key row, every session and every admin log entry, as text."""
    keys = [str(v) for row in StorefrontAPIKey.objects.values() for v in row.values()]
    sessions = [str(s.get_decoded()) + s.session_data for s in Session.objects.all()]
    log = [f"{e.object_repr} {e.change_message}" for e in LogEntry.objects.all()]
    return "\n".join(keys + sessions + log)


def test_a_new_key_is_shown_once_then_never_again(staff_client, storefront):
    # when
    created = staff_client.post(create_key_url(storefront), {"name": "web shop"})
    # then the page answering the POST holds the key, and the key works
    assert created.status_code == 200
    plaintext = created.context["plaintext_key"]
    assert plaintext in created.content.decode()
    api_key = StorefrontAPIKey.objects.get()
    assert StorefrontAPIKey.objects.get_from_key(plaintext) == api_key
    assert (api_key.storefront_id, api_key.name, api_key.revoked) == (storefront.pk, "web shop", False)
    assert "no-store" in created["Cache-Control"]
    # and no later page shows it, while the prefix is listed
    storefront_page = staff_client.get(reverse("admin:vouchers_storefront_change", args=[storefront.pk]))
    key_list = staff_client.get(reverse("admin:vouchers_storefrontapikey_changelist"))
    key_page = staff_client.get(reverse("admin:vouchers_storefrontapikey_change", args=[quote(api_key.pk)]))
    secret = plaintext.partition(".")[2]
    for page in (storefront_page, key_list, key_page):
        assert page.status_code == 200
        assert secret not in page.content.decode()
        assert api_key.prefix in page.content.decode()
    # and nothing stored holds it: the key row keeps a hash, sessions and the admin log nothing
    assert secret not in everything_stored_about_keys()
    assert api_key.hashed_key != secret


def test_the_storefront_page_links_to_create_a_key(staff_client, storefront):
    # when
    page = staff_client.get(reverse("admin:vouchers_storefront_change", args=[storefront.pk]))
    html = page.content.decode()
    # then
    assert create_key_url(storefront) in html


def test_a_key_without_a_name_is_a_form_error_and_creates_nothing(staff_client, storefront):
    # when
    response = staff_client.post(create_key_url(storefront), {"name": "  "})
    # then
    assert response.status_code == 200
    assert response.context["form"].errors == {"name": ["This field is required."]}
    assert "plaintext_key" not in response.context
    assert StorefrontAPIKey.objects.count() == 0


def test_the_creation_is_in_the_storefronts_history_by_prefix_only(staff_client, storefront):
    # when
    created = staff_client.post(create_key_url(storefront), {"name": "pos"})
    # then
    api_key = StorefrontAPIKey.objects.get()
    entry = LogEntry.objects.get(object_id=str(storefront.pk))
    assert entry.change_message == f"Created API key {api_key.prefix} (pos)."
    assert created.context["plaintext_key"] not in entry.change_message


def test_keys_are_not_added_through_the_raw_form(staff_client):
    # when
    response = staff_client.get(reverse("admin:vouchers_storefrontapikey_add"))
    # then
    assert response.status_code == 403
    assert StorefrontAPIKey.objects.count() == 0


def test_revoke_action_revokes_the_selected_keys(staff_client, storefront):
    # given two keys
    first = staff_client.post(create_key_url(storefront), {"name": "one"}).context["plaintext_key"]
    second = staff_client.post(create_key_url(storefront), {"name": "two"}).context["plaintext_key"]
    key_one = StorefrontAPIKey.objects.get(name="one")
    # when
    response = staff_client.post(
        reverse("admin:vouchers_storefrontapikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key_one.pk]},
    )
    # then
    assert response.status_code == 302
    assert StorefrontAPIKey.objects.is_valid(first) is False
    assert StorefrontAPIKey.objects.is_valid(second) is True
    assert dict(StorefrontAPIKey.objects.values_list("name", "revoked")) == {"one": True, "two": False}


def test_revoking_a_revoked_key_is_refused_with_a_message_and_changes_nothing(staff_client, storefront):
    # given
    staff_client.post(create_key_url(storefront), {"name": "one"})
    key = StorefrontAPIKey.objects.get()
    url = reverse("admin:vouchers_storefrontapikey_changelist")
    staff_client.post(url, {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True)
    before = list(StorefrontAPIKey.objects.values())
    # when
    response = staff_client.post(
        url, {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True
    )
    # then
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [f"the key {key.prefix} is already revoked"]
    assert list(StorefrontAPIKey.objects.values()) == before


def test_the_generic_api_key_admin_is_not_offered():
    # given djangorestframework-api-key registers its own APIKey model, whose admin would put
    # a new key's plaintext into a message (cookie or session)
    from django.contrib import admin
    from rest_framework_api_key.models import APIKey

    # then
    assert admin.site.is_registered(APIKey) is False
    assert admin.site.is_registered(StorefrontAPIKey) is True


# --- revoking one key from its page, last use -------------------------------------------


def test_a_key_is_revoked_from_its_page_with_a_reason_and_audited(staff_client, staff, storefront):
    # given
    plaintext = staff_client.post(create_key_url(storefront), {"name": "till"}).context["plaintext_key"]
    key = StorefrontAPIKey.objects.get()
    page = staff_client.get(reverse("admin:vouchers_storefrontapikey_change", args=[quote(key.pk)]))
    revoke_url = reverse("admin:vouchers_storefrontapikey_revoke", args=[quote(key.pk)])
    assert revoke_url in page.content.decode()
    # when
    response = staff_client.post(revoke_url, {"reason": "till stolen"})
    # then
    assert response.status_code == 302
    assert StorefrontAPIKey.objects.is_valid(plaintext) is False
    from vouchers.audit.models import AuditEntry

    assert list(AuditEntry.objects.order_by("seq").values_list("action", "reason", "target_id")) == [
        ("api_key_created", "", key.prefix), ("api_key_revoked", "till stolen", key.prefix)]
    # and the revoked key's page offers no second revocation; a forced one changes nothing
    page = staff_client.get(reverse("admin:vouchers_storefrontapikey_change", args=[quote(key.pk)]))
    assert revoke_url not in page.content.decode()
    again = staff_client.post(revoke_url, {"reason": "again"})
    assert again.status_code == 200
    assert f"the key {key.prefix} is already revoked" in again.content.decode()
    assert AuditEntry.objects.count() == 2


def test_the_key_list_shows_when_each_key_was_last_used(staff_client, storefront, settings):
    # given a key used through the API
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plaintext = staff_client.post(create_key_url(storefront), {"name": "till"}).context["plaintext_key"]
    key = StorefrontAPIKey.objects.get()
    assert key.last_used_at is None
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {plaintext}"}
    with CaptureQueriesContext(connection) as first:
        assert staff_client.get("/api/v1/products/", **headers).status_code == 200
    used_at = StorefrontAPIKey.objects.get().last_used_at
    # when it is used again within the minute
    with CaptureQueriesContext(connection) as second:
        assert staff_client.get("/api/v1/products/", **headers).status_code == 200
    # then the first request wrote the time, the second wrote nothing
    def writes(ctx):
        return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]

    assert len(writes(first)) == 1
    assert writes(second) == []
    assert used_at is not None
    assert StorefrontAPIKey.objects.get().last_used_at == used_at
    # and the list shows it
    listing = staff_client.get(reverse("admin:vouchers_storefrontapikey_changelist"))
    assert "Last used at" in listing.content.decode() or "last used at" in listing.content.decode()
    assert listing.context["cl"].result_list[0].last_used_at == used_at
