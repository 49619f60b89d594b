"""Chinese and English: the language follows the browser (Accept-Language), English by default;
problem `code` values never change; the committed .mo matches the .po."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.urls import reverse

from tests.factories import StaffFactory, grant_app_permissions
from tests.html import links
from tests.vouchers.api.conftest import make_shop

# The project's catalogue and the dashboard app's own (Django loads both; the project's wins a tie).
CATALOGUES = [
    Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES",
    Path(settings.BASE_DIR) / "vouchers" / "dashboard" / "locale" / "zh_Hans" / "LC_MESSAGES",
]


@pytest.fixture(autouse=True)
def clean_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


# --- the catalog ------------------------------------------------------------------------


def _unquote(chunks: list[str]) -> str:
    return "".join(ast.literal_eval(chunk) for chunk in chunks)


def parse_po(text: str) -> dict:
    """{msgid or (msgid, n): msgstr} of every translated, non-obsolete entry of a .po file."""
    catalog: dict = {}
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith("#")]
        fields: dict[str, list[str]] = {}
        current = None
        for line in lines:
            match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) (".*")$', line)
            if match:
                current = match.group(1)
                fields[current] = [match.group(2)]
            elif line.startswith('"') and current:
                fields[current].append(line)
        if "msgid" not in fields:
            continue
        msgid = _unquote(fields["msgid"])
        if not msgid:
            continue
        if "msgid_plural" in fields:
            for key, chunks in fields.items():
                index = re.match(r"msgstr\[(\d+)\]", key)
                if index:
                    catalog[(msgid, int(index.group(1)))] = _unquote(chunks)
        else:
            catalog[msgid] = _unquote(fields.get("msgstr", ['""']))
    return catalog


@pytest.mark.parametrize("locale", CATALOGUES, ids=["project", "dashboard"])
def test_the_compiled_catalog_matches_the_po_file_and_translates_everything(locale):
    # given the committed .po and .mo
    po = parse_po((locale / "django.po").read_text(encoding="utf-8"))
    with open(locale / "django.mo", "rb") as handle:
        mo = gettext.GNUTranslations(handle)
    compiled = {key: value for key, value in mo._catalog.items() if key != ""}
    # then every entry is translated, and the .mo holds exactly the .po's entries
    assert [key for key, value in po.items() if not value] == []
    assert compiled == po


# --- the API ---------------------------------------------------------------------------


def test_an_api_problem_is_in_chinese_for_zh_hans_with_the_same_code(db):
    # given
    shop = make_shop(codes=1)
    # when
    english = shop.client.http.post("/api/v1/codes/check/", {"code": "NOPE-NOPE-NOPE-NOPE"}, format="json")
    chinese = shop.client.http.post("/api/v1/codes/check/", {"code": "NOPE-NOPE-NOPE-NOPE"}, format="json",
                                    HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then
    assert english.status_code == chinese.status_code == 404
    assert (english.json()["code"], english.json()["title"], english.json()["detail"]) == (
        "unknown_code", "Unknown code", "No such code.")
    assert (chinese.json()["code"], chinese.json()["title"], chinese.json()["detail"]) == (
        "unknown_code", "未知卡码", "没有这个卡码。")
    assert chinese["Content-Language"] == "zh-hans"


def test_an_unauthenticated_api_call_is_in_chinese_too(client):
    response = client.get("/api/v1/products/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert response.status_code == 401
    assert (response.json()["code"], response.json()["title"]) == ("not_authenticated", "未认证")


def test_english_is_the_default_for_an_unknown_language(client):
    response = client.get("/api/v1/products/", HTTP_ACCEPT_LANGUAGE="fr-FR")
    assert (response.json()["code"], response.json()["title"]) == ("not_authenticated", "Not authenticated")


# --- the admin -------------------------------------------------------------------------


def test_an_admin_page_is_in_chinese_for_a_chinese_browser(client, product):
    # given a staff member whose browser asks for Chinese
    member = StaffFactory(merchant=product.merchant)
    grant_app_permissions(member.user, "vouchers")
    client.force_login(member.user)
    # when
    page = client.get(reverse("admin:vouchers_batch_generate"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    listing = client.get(reverse("admin:vouchers_batch_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    english = client.get(reverse("admin:vouchers_batch_changelist"), HTTP_ACCEPT_LANGUAGE="en")
    # then
    html = page.content.decode()
    assert '<html lang="zh-hans"' in html
    assert re.search(r"<title>\s*生成卡码 \| ", html)
    assert "以连字符分隔的每组字符数；0 表示不分组。" in html
    generate, load = reverse("admin:vouchers_batch_generate"), reverse("admin:vouchers_batch_import")
    assert links(listing.content.decode(), generate) == ["生成卡码"]
    assert links(listing.content.decode(), load) == ["导入卡码"]
    assert links(english.content.decode(), generate) == ["Generate codes"]


def test_a_fraud_alert_can_be_rendered_in_chinese(settings, merchant):
    from fraud.models import FraudEvent
    from fraud.services.alerts import render_alert

    settings.FRAUD_ALERT_LANGUAGE = "zh-hans"
    event = FraudEvent.objects.create(merchant=merchant, severity="high", kind="lockout", decision="lockout",
                                      context={"scope": "api_key"})
    subject, body = render_alert(event)
    assert subject.startswith(f"[风控 HIGH] {merchant.name} ({merchant.slug})：")
    assert f"商户：{merchant.name} ({merchant.slug})" in body
    assert f"管理后台中的详情：http://127.0.0.1:8000/admin/fraud/fraudevent/{event.pk}/change/" in body


# The apps whose models, fields, help texts and choices the admin shows by name.
NAMED_APPS = ("vouchers", "webhooks", "partners", "audit", "fraud", "ops")


def _names_of_apps():
    """(where, name) of every app, model and field name, help text and choice label of NAMED_APPS."""
    from django.apps import apps
    from django.db.models import Field

    for label in NAMED_APPS:
        config = apps.get_app_config(label)
        yield f"app {label}", config.verbose_name
        for model in config.get_models():
            opts = model._meta
            yield f"{opts.label} verbose_name", opts.verbose_name
            yield f"{opts.label} verbose_name_plural", opts.verbose_name_plural
            for field in opts.get_fields():
                if not isinstance(field, Field):
                    continue  # a relation seen from the other side, named by its own model
                if field.auto_created and field.primary_key:
                    continue  # Django's own "ID", the same in every language
                where = f"{opts.label}.{field.name}"
                yield f"{where} verbose_name", field.verbose_name
                if field.help_text:
                    yield f"{where} help_text", field.help_text
                for value, choice in field.choices or ():
                    yield f"{where} choice {value}", choice


def test_every_app_model_field_and_choice_name_is_a_lazy_translation_with_a_chinese_entry():
    from django.utils import translation
    from django.utils.functional import Promise

    translated = {}
    for locale in CATALOGUES:
        translated.update(parse_po((locale / "django.po").read_text(encoding="utf-8")))
    names = list(_names_of_apps())
    assert len(names) > 300
    # every name is a lazy translation (gettext_lazy in the model) ...
    assert [where for where, name in names if not isinstance(name, Promise)] == []
    # ... of an English text that has a Chinese entry in a catalogue
    with translation.override(None):
        english = {where: str(name) for where, name in names}
    assert {where: text for where, text in english.items() if not translated.get(text)} == {}
    # and the admin shows it in the reader's language
    from partners.models import Agreement, LedgerEntry
    from vouchers.webhooks.models import WebhookDelivery

    with translation.override("zh-hans"):
        assert str(Agreement._meta.verbose_name_plural) == "协议"
        assert str(LedgerEntry._meta.get_field("occurred_at").verbose_name) == "发生时间"
        assert str(WebhookDelivery._meta.get_field("attempts").verbose_name) == "尝试次数"
        assert str(dict(Agreement._meta.get_field("period").choices)["monthly"]) == "每月"
    with translation.override("en"):
        help_text = Agreement._meta.get_field("currency").help_text
        assert str(help_text) == "ISO 4217 settlement currency, e.g. USD, JPY."


def test_the_settlement_and_webhook_admin_pages_are_in_chinese(client, merchant):
    from tests.factories import PartnerFactory
    from tests.partners.conftest import make_agreement

    member = StaffFactory(merchant=merchant)
    grant_app_permissions(member.user, "partners", "webhooks")
    client.force_login(member.user)
    make_agreement(merchant=merchant, products=[], partner=PartnerFactory(name="Alpha"))
    # when
    agreements = client.get(reverse("admin:partners_agreement_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    statements = client.get(reverse("admin:partners_statement_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    endpoint = client.get(reverse("admin:webhooks_webhookendpoint_add"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then headings, columns, messages and form labels are Chinese
    html = agreements.content.decode()
    assert re.search(r"<title>\s*协议 \| ", html)
    assert "结算周期" in html and "申诉期（天）" in html and "合作方与结算" in html and "每月" in html
    assert "Agreements" not in html and "Monthly" not in html
    assert "立即结出到期对账单" in statements.content.decode()
    form = endpoint.content.decode()
    assert ">店铺" in form and ">事件" in form


def test_a_body_too_large_and_a_refused_webhook_endpoint_are_explained_in_chinese(db, settings):
    from vouchers.webhooks.services import endpoints

    settings.API_MAX_BODY_BYTES = 4096
    shop = make_shop(codes=1)
    # when
    response = shop.client.http.post("/api/v1/redemptions/", data='{"code": "' + "A" * 5000 + '"}',
                                     content_type="application/json", HTTP_IDEMPOTENCY_KEY="big",
                                     HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then
    assert response.status_code == 413
    assert (response.json()["code"], response.json()["title"], response.json()["detail"]) == (
        "payload_too_large", "请求体过大", "请求体为 5012 字节；最多接受 4096 字节。")
    from django.utils import translation

    with translation.override("zh-hans"):
        with pytest.raises(endpoints.InvalidEndpoint) as refused:
            endpoints.validate_events([])
        # (the title is lazy: rendered in the language active when the answer is written)
        assert (refused.value.code, str(refused.value.title), refused.value.detail) == (
            "invalid_request", "无效的 Webhook 端点", "请至少订阅一种事件类型。")
