"""No plaintext code in any admin page but the reveal response, in any e-mail or in the audit log."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core import mail
from django.urls import NoReverseMatch, reverse

from tests.factories import StaffFactory, grant_app_permissions
from tests.vouchers.api.conftest import make_shop
from vouchers import crypto
from vouchers.audit.models import AuditEntry
from vouchers.models import Code

# Alert mails are sent by a task: run it in-process, also where a broker is configured.
pytestmark = pytest.mark.usefixtures("eager_celery")


def every_admin_page(client) -> dict[str, str]:
    """Each registered model's list and the pages of its first rows, as the client sees them."""
    pages = {}
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        try:
            url = reverse("admin:{}_{}_changelist".format(*info))
        except NoReverseMatch:
            continue
        pages[url] = client.get(url).content.decode()
        for obj in model._default_manager.all()[:3]:
            change = reverse("admin:{}_{}_change".format(*info), args=[quote(obj.pk)])
            pages[change] = client.get(change).content.decode()
    return pages


def test_no_page_mail_or_audit_row_shows_a_code_except_the_reveal_response(
    client, admin_user, settings, django_capture_on_commit_callbacks,
):
    # given a day of business: codes issued and redeemed, a failed guess locked out, a reveal
    settings.FRAUD_LOCKOUT_THRESHOLDS = {"api_key": 2, "customer": 5, "ip": 10}
    shop = make_shop(codes=6)
    member = StaffFactory(merchant=shop.product.merchant, user__email="ops@merchant.example")
    grant_app_permissions(member.user, "vouchers", "fraud", "audit")
    issued = shop.client.issue(shop.product.sku, quantity=2, customer="c1").json()["codes"]
    assert shop.client.redeem(issued[0]["code"]).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            shop.client.check("NOT-A-REAL-CODE-XYZ")
    assert [m.to for m in mail.outbox] == [["ops@merchant.example"]]  # the API key's lockout
    client.force_login(member.user)
    code = Code.objects.get(pk=issued[1]["id"])
    reveal = client.post(reverse("admin:vouchers_code_reveal", args=[code.pk]), {"reason": "support ticket"})
    plaintexts = [crypto.decrypt_code(c) for c in Code.objects.all()]
    # then the reveal response shows that one code
    assert crypto.decrypt_code(code) in reveal.content.decode()
    # and no other page does, for the merchant's staff or a superuser
    for user in (member.user, admin_user):
        client.force_login(user)
        for url, html in every_admin_page(client).items():
            assert [p for p in plaintexts if p in html] == [], url
    # nor any e-mail, nor the audit log
    assert AuditEntry.objects.filter(action="code_revealed").count() == 1
    audit_text = " ".join(str(v) for row in AuditEntry.objects.values() for v in row.values())
    mails = " ".join(m.subject + m.body for m in mail.outbox)
    assert [p for p in plaintexts if p in audit_text or p in mails] == []
