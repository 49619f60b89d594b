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
    def identity(self) -> str:
        """Scope of idempotency keys and the actor written into events."""
        if self.kind == "storefront":
            return f"storefront:{self.storefront_id}"
        return f"partner:{self.partner_id}"


@dataclass(frozen=True)
class CustomerContext:
    """The end customer on whose behalf a storefront calls (never the connection address)."""

    customer: str = ""
    ip: str = ""
    device_id: str = ""
    email: str = ""
