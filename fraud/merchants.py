"""What a fraud alert needs to know of a merchant, answered by the app that owns merchants.

fraud never reads the merchants' tables (docs/architecture.md, "The dependency rule"):
the app owning them registers a directory when it is ready (`vouchers.apps`), and the
alert asks it for the merchant's name and the e-mails of its active staff.
"""

from __future__ import annotations

from typing import Protocol


class MerchantDirectory(Protocol):
    def staff_emails(self, merchant_id: int) -> list[str]:
        """E-mails of the merchant's active staff, sorted, without blanks or repeats."""
        ...

    def label(self, merchant_id: int) -> str | None:
        """How people name the merchant ("Name (slug)"); None for an unknown merchant."""
        ...


_directory: MerchantDirectory | None = None


def register(directory: MerchantDirectory) -> None:
    """Set the directory the alerts ask (the app owning merchants calls it when ready)."""
    global _directory
    _directory = directory


def directory() -> MerchantDirectory:
    """The registered directory. Raises LookupError if no app registered one."""
    if _directory is None:
        raise LookupError("no merchant directory is registered (fraud.merchants.register)")
    return _directory
