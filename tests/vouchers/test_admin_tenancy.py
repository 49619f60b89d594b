"""Admin tenancy (invariant 8 of docs/invariants.md).

A merchant's staff see and act on their own objects only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from tests.factories import (
    MerchantFactory,
    PartnerFactory,
    ProductFactory,
    StaffFactory,
    StorefrontFactory,
    UserFactory,
    grant_app_permissions,
)
from vouchers.codeformat import CodeFormat
from vouchers.models import (
    Batch,
    Code,
    CodeEvent,
    Merchant,
    MerchantStaff,
    Product,
    Storefront,
    StorefrontAPIKey,
)
from vouchers.services.api_keys import create_storefront_key
from vouchers.services.generation import generate_batch


@dataclass
class World:
    """One merchant's objects, one of each kind."""

    merchant: Merchant
    staff: MerchantStaff
    product: Product
    storefront: Storefront
    batch: Batch
    api_key: StorefrontAPIKey

    def objects(self, model_name: str) -> list:
        return {
            "merchant": [self.merchant],
            "merchantstaff": [self.staff],
            "product": [self.product],
            "storefront": [self.storefront],
            "storefrontapikey": [self.api_key],
            "batch": [self.batch],
            "code": list(Code.objects.filter(batch=self.batch)),
            "codeevent": list(CodeEvent.objects.filter(batch=self.batch)),
        }[model_name]


def build_world() -> World:
    merchant = MerchantFactory()
    staff = StaffFactory(merchant=merchant)
    grant_app_permissions(staff.user, "vouchers", "partners")
    product = ProductFactory(merchant=merchant)
    storefront = StorefrontFactory(merchant=merchant)
    batch = generate_batch(product=product, count=3, fmt=CodeFormat(length=16), created_by=staff.user)
    api_key, _ = create_storefront_key(storefront=storefront, name="shop", created_by=staff.user)
    return World(merchant, staff, product, storefront, batch, api_key)


@pytest.fixture
def world_a(db) -> World:
    return build_world()


@pytest.fixture
def world_b(db) -> World:
    return build_world()


def login(client, user):
    """Log `user` in. UserFactory sets the password after saving and does not save again, so
    the in-memory hash differs from the stored one; reload it so the session stays valid."""
    user.refresh_from_db()
    client.force_login(user)
    return client


@pytest.fixture
def client_a(client, world_a):
    return login(client, world_a.staff.user)


MODEL_NAMES = [
    "merchant", "merchantstaff", "product", "storefront", "storefrontapikey", "batch", "code", "codeevent",
]


def changelist(model_name: str) -> str:
    return reverse(f"admin:vouchers_{model_name}_changelist")


def change_page(obj) -> str:
    return reverse(f"admin:vouchers_{obj._meta.model_name}_change", args=[quote(obj.pk)])


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_a_changelist_shows_only_the_staff_members_merchant(client_a, world_a, world_b, model_name):
    # when
    response = client_a.get(changelist(model_name))
    # then
    assert response.status_code == 200
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == {obj.pk for obj in world_a.objects(model_name)}
    assert shown.isdisjoint({obj.pk for obj in world_b.objects(model_name)})


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_another_merchants_object_does_not_open(client_a, world_b, model_name):
    # given
    other = world_b.objects(model_name)[0]
    # when
    response = client_a.get(change_page(other))
    # then the admin answers "no such object" (a redirect to the index), never the page
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


@pytest.mark.parametrize("suffix", ["history", "delete"])
def test_another_merchants_product_has_no_history_or_delete_page(client_a, world_b, suffix):
    # when
    url = reverse(f"admin:vouchers_product_{suffix}", args=[world_b.product.pk])
    response = client_a.post(url, {"post": "yes"}) if suffix == "delete" else client_a.get(url)
    # then
    assert response.status_code == 302
    assert Product.objects.filter(pk=world_b.product.pk).exists()


def test_list_filters_do_not_name_another_merchants_products_or_batches(client_a, world_a, world_b):
    # when
    batches_page = client_a.get(changelist("batch")).content.decode()
    codes_page = client_a.get(changelist("code")).content.decode()
    # then
    assert world_a.product.sku in batches_page
    assert world_b.product.sku not in batches_page
    assert str(world_a.batch) in codes_page
    assert str(world_b.batch) not in codes_page
    assert world_b.product.sku not in codes_page


def test_a_product_added_by_staff_belongs_to_their_merchant_whatever_is_posted(client_a, world_a, world_b):
    # given a form that tries to smuggle in another merchant
    data = {
        "merchant": world_b.merchant.pk, "sku": "NEW-1", "name": "New card", "face_value": "25.00",
        "currency": "EUR", "partner": "", "is_active": "on",
    }
    # when
    response = client_a.post(reverse("admin:vouchers_product_add"), data)
    # then
    assert response.status_code == 302
    product = Product.objects.get(sku="NEW-1")
    assert product.merchant_id == world_a.merchant.pk
    assert not Product.objects.filter(merchant=world_b.merchant, sku="NEW-1").exists()


def test_the_add_product_form_has_no_merchant_field_for_staff(client_a):
    # when
    response = client_a.get(reverse("admin:vouchers_product_add"))
    # then
    assert response.status_code == 200
    assert "merchant" not in response.context["adminform"].form.fields


def test_a_duplicate_sku_is_a_form_error_not_a_500(client_a, world_a):
    # given
    products_before = Product.objects.count()
    data = {
        "sku": world_a.product.sku, "name": "Again", "face_value": "10.00", "currency": "USD",
        "partner": "", "is_active": "on",
    }
    # when
    response = client_a.post(reverse("admin:vouchers_product_add"), data)
    # then
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert errors == ["Product with this Merchant and Sku already exists."]
    assert Product.objects.count() == products_before


def test_a_bad_currency_or_value_is_a_form_error_not_a_500(client_a):
    # given
    products_before = Product.objects.count()
    data = {"sku": "X-1", "name": "X", "face_value": "0", "currency": "usd", "partner": "", "is_active": "on"}
    # when
    response = client_a.post(reverse("admin:vouchers_product_add"), data)
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Product.objects.count() == products_before


def test_any_partner_may_be_chosen_for_a_product(client_a, world_a):
    # given partners are shared by all merchants
    partner = PartnerFactory()
    data = {
        "sku": "P-1", "name": "Partner card", "face_value": "5.00", "currency": "USD",
        "partner": partner.pk, "is_active": "on",
    }
    # when
    response = client_a.post(reverse("admin:vouchers_product_add"), data)
    # then
    assert response.status_code == 302
    assert Product.objects.get(sku="P-1").partner_id == partner.pk


def test_a_storefront_cannot_be_given_another_merchants_product(client_a, world_a, world_b):
    # given
    storefronts_before = Storefront.objects.count()
    data = {"name": "New shop", "is_active": "on", "reservation_ttl_seconds": "900",
            "products": [world_b.product.pk], **inline_management("api_keys")}
    # when
    response = client_a.post(reverse("admin:vouchers_storefront_add"), data)
    # then
    assert response.status_code == 200
    assert "products" in response.context["adminform"].form.errors
    assert Storefront.objects.count() == storefronts_before


def test_staff_add_a_storefront_for_their_merchant_with_their_products(client_a, world_a):
    # given
    data = {"name": "New shop", "is_active": "on", "reservation_ttl_seconds": "900",
            "products": [world_a.product.pk], **inline_management("api_keys")}
    # when
    response = client_a.post(reverse("admin:vouchers_storefront_add"), data)
    # then
    assert response.status_code == 302
    storefront = Storefront.objects.get(name="New shop")
    assert storefront.merchant_id == world_a.merchant.pk
    assert list(storefront.products.all()) == [world_a.product]


def test_a_superuser_cannot_give_a_storefront_another_merchants_product(client, world_a, world_b):
    # given
    login(client, UserFactory(is_staff=True, is_superuser=True))
    storefronts_before = Storefront.objects.count()
    data = {"merchant": world_a.merchant.pk, "name": "Mixed", "is_active": "on",
            "reservation_ttl_seconds": "900", "products": [world_b.product.pk],
            **inline_management("api_keys")}
    # when
    response = client.post(reverse("admin:vouchers_storefront_add"), data)
    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["products"] == [
        f"Not products of {world_a.merchant}: {world_b.product.sku}."
    ]
    assert Storefront.objects.count() == storefronts_before


def test_a_superuser_sees_every_merchant(client, world_a, world_b):
    # given
    login(client, UserFactory(is_staff=True, is_superuser=True))
    # when
    response = client.get(changelist("product"))
    # then
    assert {p.pk for p in response.context["cl"].result_list} == {world_a.product.pk, world_b.product.pk}


def test_staff_without_a_merchant_see_nothing_whatever_their_permissions(client, world_a):
    # given a staff user with every permission but no MerchantStaff row
    user = UserFactory(is_staff=True)
    grant_app_permissions(user, "vouchers", "partners")
    login(client, user)
    # when
    index = client.get(reverse("admin:index"))
    products = client.get(changelist("product"))
    product_page = client.get(change_page(world_a.product))
    # then
    assert index.status_code == 200
    assert index.context["app_list"] == []
    assert products.status_code == 403
    assert product_page.status_code == 403


def test_staff_see_only_their_merchants_partners_and_superusers_manage_them(client_a, world_a):
    # given a partner with an agreement with merchant A, another without, and the partners permissions
    from partners.models import Agreement
    from tests.factories import PartnerFactory, grant_app_permissions

    ours, theirs = PartnerFactory(), PartnerFactory()
    Agreement.objects.create(merchant=world_a.merchant, partner=ours, currency="USD")
    grant_app_permissions(world_a.staff.user, "partners")
    # when
    response = client_a.get(reverse("admin:partners_partner_changelist"))
    change = client_a.post(reverse("admin:partners_partner_change", args=[ours.pk]), {"name": "Renamed"})
    # then staff see their merchant's partner only, and cannot edit it
    assert response.status_code == 200
    assert {p.pk for p in response.context["cl"].result_list} == {ours.pk}
    assert change.status_code == 403
    assert type(ours).objects.get(pk=ours.pk).name == ours.name
    assert theirs.pk not in {p.pk for p in response.context["cl"].result_list}


def test_staff_cannot_grant_admin_access(client_a, world_a):
    # given
    staff_before = MerchantStaff.objects.count()
    newcomer = UserFactory(is_staff=True)
    # when
    response = client_a.post(
        reverse("admin:vouchers_merchantstaff_add"), {"user": newcomer.pk, "merchant": world_a.merchant.pk}
    )
    # then
    assert response.status_code == 403
    assert MerchantStaff.objects.count() == staff_before


def test_another_merchants_batch_cannot_be_paused_from_its_status_page(client_a, world_b):
    # given
    events_before = CodeEvent.objects.count()
    url = reverse("admin:vouchers_batch_status", args=[world_b.batch.pk, "pause"])
    # when
    response = client_a.post(url)
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert Batch.objects.get(pk=world_b.batch.pk).status == Batch.Status.ACTIVE
    assert CodeEvent.objects.count() == events_before


def test_another_merchants_batch_cannot_be_voided_by_a_forged_action(client_a, world_b):
    # given a POST naming B's batch in the changelist action
    events_before = CodeEvent.objects.count()
    data = {
        "action": "void_selected", "_selected_action": [world_b.batch.pk], "confirm": "yes", "reason": "x",
    }
    # when
    response = client_a.post(changelist("batch"), data)
    # then the action ran over the staff member's own batches only: none was selected
    assert response.status_code == 302
    assert Batch.objects.get(pk=world_b.batch.pk).status == Batch.Status.ACTIVE
    assert CodeEvent.objects.count() == events_before


def test_another_merchants_storefront_gets_no_api_key(client_a, world_b):
    # given
    keys_before = StorefrontAPIKey.objects.count()
    url = reverse("admin:vouchers_storefront_create_api_key", args=[world_b.storefront.pk])
    # when
    response = client_a.post(url, {"name": "stolen"})
    # then
    assert response.status_code == 302
    assert StorefrontAPIKey.objects.count() == keys_before


def test_codes_cannot_be_generated_for_another_merchants_product(client_a, world_b):
    # given
    batches_before = Batch.objects.count()
    data = {"product": world_b.product.pk, "count": "5", "alphabet": "23456789ABCDEFGHJKMNPQRSTUVWXYZ",
            "group": "4"}
    # when
    response = client_a.post(reverse("admin:vouchers_batch_generate"), data)
    # then
    assert response.status_code == 200
    assert response.context["form"].errors["product"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert Batch.objects.count() == batches_before


def inline_management(prefix: str) -> dict:
    """The management form of an (empty) inline formset on an add page."""
    return {
        f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_face_value_is_kept_exactly(client_a):
    # given
    data = {"sku": "D-1", "name": "Decimal", "face_value": "12.34", "currency": "USD", "partner": "",
            "is_active": "on"}
    # when
    client_a.post(reverse("admin:vouchers_product_add"), data)
    # then
    assert Product.objects.get(sku="D-1").face_value == Decimal("12.34")
