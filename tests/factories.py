"""factory_boy factories for the domain models."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from partners.models import Partner
from vouchers.models import Merchant, MerchantStaff, Product, Storefront


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    name = factory.Sequence(lambda n: f"Merchant {n}")
    slug = factory.Sequence(lambda n: f"merchant-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    # Hashed before the first save, so the stored row and the object agree.
    password = factory.django.Password("correct horse battery")


class StaffFactory(factory.django.DjangoModelFactory):
    """A merchant's staff member with admin access (is_staff)."""

    class Meta:
        model = MerchantStaff

    user = factory.SubFactory(UserFactory, is_staff=True)
    merchant = factory.SubFactory(MerchantFactory)


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner

    name = factory.Sequence(lambda n: f"Partner {n}")
    slug = factory.Sequence(lambda n: f"partner-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    merchant = factory.SubFactory(MerchantFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n}")
    name = factory.Sequence(lambda n: f"Gift card {n}")
    face_value = Decimal("50.00")
    currency = "USD"


class StorefrontFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Storefront

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"Storefront {n}")


def grant_app_permissions(user, *app_labels: str) -> None:
    """Give `user` every model permission of the named apps (admin tests act as trusted staff)."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=app_labels))
    # Permissions are cached on the user object; drop the cache so they take effect now.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
