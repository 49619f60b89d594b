"""Who is calling the API, and on whose behalf."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """An authenticated API client: one storefront of one merchant (partners come later).

    `is_authenticated` lets DRF treat it as request.user.
    """

    kind: str
    api_key_id: str
    merchant_id: int | None = None
    storefront_id: int | None = None
    partner_id: int | None = None
    reservation_ttl_seconds: int = 15 * 60

    is_authenticated = True

    @property
    def own_merchant_id(self) -> int:
        """The merchant of a storefront caller (a partner acts across merchants)."""
        return _required(self.merchant_id, f"a {self.kind} caller has no merchant")

    @property
    def own_storefront_id(self) -> int:
        """The storefront of a storefront caller; the storefront-only services use it."""
        return _required(self.storefront_id, f"a {self.kind} caller has no storefront")

    @property
    def own_partner_id(self) -> int:
        """The partner of a partner caller."""
        return _required(self.partner_id, f"a {self.kind} caller has no partner")

    @property
    def identity(self) -> str:
        """Scope of idempotency keys and the actor written into events."""
        if self.kind == "storefront":
            return f"storefront:{self.storefront_id}"
        return f"partner:{self.partner_id}"


def _required(value: int | None, refusal: str) -> int:
    # The API's permissions let only the right kind of caller reach a service, so this
    # is a programming error, never a client's.
    if value is None:
        raise TypeError(refusal)
    return value


@dataclass(frozen=True)
class CustomerContext:
    """The end customer on whose behalf a storefront calls (never the connection address)."""

    customer: str = ""
    ip: str = ""
    device_id: str = ""
    email: str = ""
