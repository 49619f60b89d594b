import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db


def test_admin_login_posts_are_rate_limited_per_address(settings):
    # given a tight login rate and a fresh counter (per hour: django-ratelimit counts in fixed
    # windows, and a minute's window could roll over between two slow requests)
    settings.ADMIN_LOGIN_RATE = "3/h"
    cache.clear()
    client = Client()
    # when the same address posts wrong passwords four times
    statuses = [
        client.post("/admin/login/", {"username": "nobody", "password": "wrong"}).status_code
        for _ in range(4)
    ]
    # then the first three are answered by the form, the fourth is refused
    assert statuses == [200, 200, 200, 403]
    cache.clear()
