from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "vouchers.ops"
    label = "ops"
    verbose_name = "Operations: health, metrics, invariants"
