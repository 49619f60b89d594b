from django.apps import AppConfig


class VouchersConfig(AppConfig):
    name = "vouchers"
    verbose_name = "Voucher inventory"

    def ready(self) -> None:
        from vouchers import checks  # noqa: F401  (registers system checks)
