"""Storefront API keys: created once, stored as a hash, revoked for good."""

from __future__ import annotations

import logging

import pytest

from tests.factories import StorefrontFactory, UserFactory
from vouchers.models import StorefrontAPIKey
from vouchers.services.api_keys import (
    APIKeyAlreadyRevoked,
    InvalidAPIKeyName,
    create_storefront_key,
    revoke_storefront_key,
)


@pytest.fixture
def storefront(merchant):
    return StorefrontFactory(merchant=merchant)


@pytest.fixture
def staff_user(db):
    return UserFactory(is_staff=True)


def stored_values(api_key: StorefrontAPIKey) -> list[str]:
    row = StorefrontAPIKey.objects.filter(pk=api_key.pk).values().get()
    return [str(value) for value in row.values()]


def test_a_new_key_works_and_only_its_hash_and_prefix_are_stored(storefront, staff_user, caplog):
    # given
    caplog.set_level(logging.INFO, logger="vouchers.services.api_keys")
    # when
    api_key, plaintext = create_storefront_key(storefront=storefront, name="web shop", created_by=staff_user)
    # then
    assert StorefrontAPIKey.objects.get_from_key(plaintext) == api_key
    assert api_key.storefront_id == storefront.pk
    assert api_key.name == "web shop"
    prefix, _, secret = plaintext.partition(".")
    assert api_key.prefix == prefix
    assert not any(plaintext in value or secret in value for value in stored_values(api_key))
    assert f"prefix={prefix}" in caplog.text
    assert f"by=user:{staff_user.pk}" in caplog.text
    assert secret not in caplog.text


@pytest.mark.parametrize("name", ["", "   ", "x" * 51])
def test_a_key_needs_a_name_and_nothing_is_created_without_one(storefront, staff_user, name):
    # when
    with pytest.raises(InvalidAPIKeyName) as excinfo:
        create_storefront_key(storefront=storefront, name=name, created_by=staff_user)
    # then
    assert excinfo.value.code == "invalid_request"
    assert StorefrontAPIKey.objects.count() == 0


def test_a_revoked_key_no_longer_authenticates(storefront, staff_user):
    # given
    api_key, plaintext = create_storefront_key(storefront=storefront, name="pos", created_by=staff_user)
    # when
    revoke_storefront_key(api_key=api_key, revoked_by=staff_user)
    # then
    assert StorefrontAPIKey.objects.get(pk=api_key.pk).revoked is True
    assert StorefrontAPIKey.objects.is_valid(plaintext) is False


def test_revoking_twice_is_refused_and_changes_nothing(storefront, staff_user):
    # given
    api_key, _ = create_storefront_key(storefront=storefront, name="pos", created_by=staff_user)
    revoke_storefront_key(api_key=api_key, revoked_by=staff_user)
    before = stored_values(api_key)
    # when
    with pytest.raises(APIKeyAlreadyRevoked) as excinfo:
        revoke_storefront_key(api_key=StorefrontAPIKey.objects.get(pk=api_key.pk), revoked_by=staff_user)
    # then
    assert excinfo.value.code == "already_revoked"
    assert stored_values(api_key) == before
