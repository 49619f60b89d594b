"""Fixtures shared by the vouchers tests: a merchant's staff member and a logged-in admin client."""

import pytest

from tests.factories import StaffFactory, grant_app_permissions


@pytest.fixture
def staff(merchant):
    """A staff user of `merchant` holding every vouchers permission."""
    member = StaffFactory(merchant=merchant)
    grant_app_permissions(member.user, "vouchers")
    return member.user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client
