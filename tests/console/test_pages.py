"""The landing page, the API docs and the schema, as a browser with no internet gets them."""

from __future__ import annotations

import re

import pytest
from django.test import Client

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture
def browser_client() -> Client:
    return Client(HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")


def test_the_landing_page_links_the_admin_the_docs_the_schema_and_health(browser_client, db):
    # when
    response = browser_client.get("/")
    # then
    assert response.status_code == 200
    html = response.content.decode()
    for href in ('href="/admin/"', 'href="/api/docs/"', 'href="/api/redoc/"', 'href="/api/schema/"',
                 'href="/healthz"'):
        assert href in html
    assert not EXTERNAL.search(html)


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_every_script_and_style_from_our_own_static_files(browser_client, path, db):
    # when
    response = browser_client.get(path)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "/static/drf_spectacular_sidecar/" in html


def test_a_browser_gets_the_schema_as_text_it_can_show(browser_client, db):
    # when
    response = browser_client.get("/api/schema/")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().startswith("openapi: 3.")


def test_an_api_client_still_gets_the_openapi_media_types(db):
    # when
    yaml_response = Client().get("/api/schema/")
    json_response = Client().get("/api/schema/?format=json")
    # then
    assert yaml_response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert json_response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert json_response.json()["openapi"].startswith("3.")


def test_the_permission_picker_names_permissions_in_words(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    # when
    html = client.get("/admin/auth/group/add/").content.decode()
    # then
    assert ">Batch: Can change batch<" in html
    assert "vouchers.change_batch" not in html and "vouchers | batch" not in html


def test_the_dashboard_follows_a_chinese_browser(client, db):
    from tests.factories import StaffFactory

    member = StaffFactory()
    client.force_login(member.user)
    # when
    chinese = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-Hans,zh;q=0.9").content.decode()
    english = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    # then
    for label in ("库存卡码", "审核队列", "领取率", "核销率", "即将到期"):
        assert label in chinese and label not in english
    assert "Codes in stock" in english and "Codes in stock" not in chinese
