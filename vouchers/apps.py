from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VouchersConfig(AppConfig):
    name = "vouchers"
    verbose_name = _("Voucher inventory")

    def ready(self) -> None:
        from config.tenancy import register_merchant_paths
        from fraud import merchants
        from vouchers import (
            checks,  # noqa: F401  (registers system checks)
            merchant_directory,
            tenancy,
        )

        # How vouchers' models reach their merchant, for every app's admin (config.tenancy).
        register_merchant_paths(tenancy.MERCHANT_PATHS, choice_select_related=tenancy.CHOICE_SELECT_RELATED)
        # A merchant's name and staff e-mails, for fraud's alerts (fraud never reads these tables).
        merchants.register(merchant_directory)
