"""How each of vouchers' models reaches its merchant, for the tenancy rules of `config.tenancy`.

Registered when the app is ready (`vouchers.apps`), so every admin and console page
scoping these models, or offering them as choices, finds them.
"""

from __future__ import annotations

from django.db.models import Model

from vouchers.models import (
    Batch,
    Code,
    CodeEvent,
    Issuance,
    Merchant,
    MerchantStaff,
    Product,
    Redemption,
    Storefront,
    StorefrontAPIKey,
)

# One or more lookups from each merchant-owned model to its merchant, OR-ed.
MERCHANT_PATHS: dict[type[Model], tuple[str, ...]] = {
    Merchant: ("pk",),
    MerchantStaff: ("merchant",),
    Storefront: ("merchant",),
    StorefrontAPIKey: ("storefront__merchant",),
    Product: ("merchant",),
    Batch: ("product__merchant",),
    Code: ("batch__product__merchant",),
    Issuance: ("storefront__merchant",),
    Redemption: ("code__batch__product__merchant",),
    # Events of a batch or its codes name the batch; events of an issuance may name only it.
    CodeEvent: ("batch__product__merchant", "issuance__storefront__merchant"),
}

# What a choice list of each model needs to print its rows without a query per row.
CHOICE_SELECT_RELATED: dict[type[Model], tuple[str, ...]] = {
    Batch: ("product",),
    Storefront: ("merchant",),
    Code: ("batch",),
}
