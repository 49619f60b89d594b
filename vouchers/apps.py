from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VouchersConfig(AppConfig):
    name = "vouchers"
    verbose_name = _("Voucher inventory")

    def ready(self) -> None:
        from config.tenancy import register_merchant_paths
        from vouchers import (
            checks,  # noqa: F401  (registers system checks)
            tenancy,
        )

        register_merchant_paths(tenancy.MERCHANT_PATHS, choice_select_related=tenancy.CHOICE_SELECT_RELATED)
