"""Operator commands: demo, quickstart, generate_codes."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from partners.models import Partner
from tests.factories import MerchantFactory, ProductFactory
from vouchers import codeformat, crypto
from vouchers.models import Batch, Code, Merchant, MerchantStaff, Product, Storefront, StorefrontAPIKey

DEMO_SKUS = ["DEMO-GIFT-50", "DEMO-STREAM-1M", "DEMO-COFFEE-10"]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def demo_json() -> dict:
    return json.loads(run("demo", "--json"))


# --- demo ----------------------------------------------------------------------------


def test_demo_json_prints_one_object_with_working_logins_and_key(db):
    # when
    result = demo_json()
    # then
    assert {
        "admin_username", "admin_password", "staff_username", "staff_password", "storefront_api_key",
        "storefront", "merchant", "skus", "api_base", "admin_url",
    } <= set(result)
    assert result["admin_username"] == "admin"
    assert result["staff_username"] == "merchant-staff"
    assert result["skus"] == DEMO_SKUS
    assert result["merchant"] == "demo"
    assert result["storefront"] == "Demo Storefront"
    assert result["api_base"] == "http://127.0.0.1:8000/api/v1/"
    assert result["admin_url"] == "http://127.0.0.1:8000/admin/"
    assert [p["available"] for p in result["products"]] == [200, 200, 200]
    admin = authenticate(username="admin", password=result["admin_password"])
    assert admin is not None and admin.is_superuser and admin.is_staff
    staff = authenticate(username="merchant-staff", password=result["staff_password"])
    assert staff is not None and staff.is_staff and not staff.is_superuser
    assert staff.merchant_staff.merchant.slug == "demo"
    key = StorefrontAPIKey.objects.get_from_key(result["storefront_api_key"])
    assert key.storefront.name == "Demo Storefront"
    assert key.revoked is False


def test_demo_twice_creates_nothing_twice_and_prints_the_same_working_logins_and_key(db, settings):
    # given a first run
    first = demo_json()
    codes_before = dict(Code.objects.values_list("pk", "ciphertext"))
    # when it runs again
    second = demo_json()
    # then the data is the same and so is everything it printed, which still works
    assert Merchant.objects.count() == 1
    assert Storefront.objects.count() == 1
    assert Partner.objects.count() == 1
    assert list(Product.objects.order_by("sku").values_list("sku", flat=True)) == sorted(DEMO_SKUS)
    assert Batch.objects.count() == 3
    assert dict(Code.objects.values_list("pk", "ciphertext")) == codes_before
    assert get_user_model().objects.filter(username__in=["admin", "merchant-staff"]).count() == 2
    assert MerchantStaff.objects.count() == 1
    assert StorefrontAPIKey.objects.count() == 1
    assert second == first
    assert StorefrontAPIKey.objects.is_valid(first["storefront_api_key"])
    assert authenticate(username="admin", password=first["admin_password"]) is not None
    assert authenticate(username="merchant-staff", password=first["staff_password"]) is not None
    # and the file that remembers them is private to its owner
    assert settings.DEMO_CREDENTIALS_FILE.stat().st_mode & 0o777 == 0o600


def test_demo_after_quickstart_keeps_the_quickstart_logins(db):
    # given the README's first step (quickstart prints the logins)
    text = run("quickstart", "--no-serve")
    # when the README's API section runs demo --json
    result = demo_json()
    # then the printed logins and key are those of the quickstart and still work
    assert f"admin / {result['admin_password']}" in text
    assert f"merchant-staff / {result['staff_password']}" in text
    assert result["storefront_api_key"] in text
    assert authenticate(username="admin", password=result["admin_password"]) is not None
    assert StorefrontAPIKey.objects.count() == 1


def test_demo_never_resets_the_password_of_an_existing_user_it_does_not_know(db, settings):
    # given an admin user made by someone else, with a password the demo never printed
    get_user_model().objects.create_user(username="admin", password="chosen-by-the-operator")
    # when demo runs
    result = demo_json()
    text = run("demo")
    # then the password is untouched and not printed
    assert result["admin_password"] is None
    assert "admin / (unchanged; set a new one with: manage.py changepassword admin)" in text
    assert authenticate(username="admin", password="chosen-by-the-operator") is not None
    assert authenticate(username="merchant-staff", password=result["staff_password"]) is not None


def test_demo_replaces_a_revoked_demo_key_and_keeps_the_passwords(db):
    # given a first run whose key was revoked since
    first = demo_json()
    StorefrontAPIKey.objects.update(revoked=True)
    # when demo runs again
    second = demo_json()
    # then a new working key is printed (and remembered), the passwords stay
    assert second["storefront_api_key"] != first["storefront_api_key"]
    assert StorefrontAPIKey.objects.is_valid(second["storefront_api_key"])
    assert StorefrontAPIKey.objects.count() == 2
    assert (second["admin_password"], second["staff_password"]) == (
        first["admin_password"], first["staff_password"])
    assert demo_json()["storefront_api_key"] == second["storefront_api_key"]


def test_demo_on_a_fresh_database_reuses_the_remembered_passwords(db):
    # given a first run, then the users are gone (a database reset)
    first = demo_json()
    get_user_model().objects.filter(username__in=["admin", "merchant-staff"]).delete()
    # when demo runs again
    second = demo_json()
    # then the new users get the passwords printed before
    assert (second["admin_password"], second["staff_password"]) == (
        first["admin_password"], first["staff_password"])
    assert authenticate(username="admin", password=first["admin_password"]) is not None


def test_demo_products_carry_generated_stock_and_one_partner(db):
    demo_json()
    for sku in DEMO_SKUS:
        product = Product.objects.get(sku=sku)
        batch = product.batches.get()
        assert batch.size == Code.objects.filter(batch=batch).count() == 200
    assert Product.objects.get(sku="DEMO-STREAM-1M").partner.slug == "demo-partner"
    assert Product.objects.filter(partner__isnull=False).count() == 1
    gift = Code.objects.filter(batch__product__sku="DEMO-GIFT-50").first()
    assert crypto.decrypt_code(gift).startswith("GIFT-")


def test_demo_human_output_shows_logins_and_key(db):
    text = run("demo")
    key = StorefrontAPIKey.objects.get()
    assert "admin / " in text
    assert "merchant-staff / " in text
    assert f"{key.prefix}." in text
    for sku in DEMO_SKUS:
        assert sku in text


def test_quickstart_without_serving_migrates_and_prints_the_demo_logins(db):
    text = run("quickstart", "--no-serve")
    assert "admin / " in text
    assert "API key" in text
    assert Product.objects.count() == 3


# --- generate_codes ------------------------------------------------------------------


def test_generate_codes_creates_a_batch_in_the_requested_format(product):
    # when
    text = run(
        "generate_codes", "--product", product.sku, "--count", "25", "--prefix", "GC", "--group", "4",
        "--check-char", "--valid-until", "2031-06-30", "--reference", "launch", "--no-progress",
    )
    # then
    batch = Batch.objects.get(product=product)
    assert f"Batch {batch.pk}: 25 codes for {product.sku}" in text
    assert batch.size == 25
    assert batch.reference == "launch"
    assert batch.valid_until.isoformat() == "2031-06-30T00:00:00+00:00"
    assert batch.format["prefix"] == "GC"
    assert batch.format["check_char"] is True
    for code in Code.objects.filter(batch=batch):
        plain = crypto.decrypt_code(code)
        assert plain.startswith("GC-")
        assert codeformat.has_valid_check_character(
            plain.removeprefix("GC-").replace("-", ""), codeformat.UNAMBIGUOUS_ALPHABET
        )
        assert plain not in text


def test_generate_codes_picks_the_merchant_when_two_share_a_sku(merchant):
    other = MerchantFactory()
    ProductFactory(merchant=merchant, sku="SHARED")
    mine = ProductFactory(merchant=other, sku="SHARED")
    with pytest.raises(CommandError, match="--merchant"):
        run("generate_codes", "--product", "SHARED", "--count", "1", "--no-progress")
    assert Batch.objects.count() == 0
    run("generate_codes", "--product", "SHARED", "--merchant", other.slug, "--count", "2", "--no-progress")
    assert Batch.objects.get().product == mine


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "2", "--alphabet", "0123456789", "--length", "12"], "billion random guesses"),
        (["--count", "0"], "count must be between 1"),
        (["--count", "1", "--alphabet", "AAB"], "Invalid code format"),
        (["--count", "1", "--length", "2"], "Invalid code format"),
        (["--count", "1", "--valid-from", "2030-02-01", "--valid-until", "2030-01-01"], "ends before"),
        (["--count", "1", "--valid-until", "next tuesday"], "ISO 8601"),
    ],
)
def test_generate_codes_refuses_bad_settings_with_a_clear_message_and_stores_nothing(product, args, message):
    with pytest.raises(CommandError, match=message):
        run("generate_codes", "--product", product.sku, "--no-progress", *args)
    assert Batch.objects.count() == 0
    assert Code.objects.count() == 0


def test_generate_codes_records_the_user_as_creator(product):
    from tests.factories import UserFactory

    user = UserFactory(username="ops")
    run("generate_codes", "--product", product.sku, "--count", "3", "--user", "ops", "--no-progress")
    assert Batch.objects.get().created_by == user
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("generate_codes", "--product", product.sku, "--count", "3", "--user", "ghost")
    assert Batch.objects.count() == 1


def test_generate_codes_refuses_an_unknown_sku(db):
    with pytest.raises(CommandError, match="No product with SKU 'NOPE'"):
        run("generate_codes", "--product", "NOPE", "--count", "1")
    assert Batch.objects.count() == 0
