"""The merchant facts fraud's alerts ask for (`fraud.merchants.MerchantDirectory`).

Registered when the app is ready (`vouchers.apps`), so fraud learns a merchant's name
and whom to alert without reading vouchers' tables itself.
"""

from __future__ import annotations

from vouchers.models import Merchant, MerchantStaff


def staff_emails(merchant_id: int) -> list[str]:
    """E-mails of the merchant's active staff users, sorted, without blanks or repeats (one query)."""
    emails = (
        MerchantStaff.objects.filter(merchant_id=merchant_id, user__is_active=True)
        .exclude(user__email="").order_by("user__email").values_list("user__email", flat=True)
    )
    return list(dict.fromkeys(emails))


def label(merchant_id: int) -> str | None:
    """"Name (slug)" of the merchant; None if it does not exist (one query)."""
    merchant = Merchant.objects.filter(pk=merchant_id).values("name", "slug").first()
    return f"{merchant['name']} ({merchant['slug']})" if merchant else None
