from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vouchers.webhooks"
    label = "webhooks"
    verbose_name = _("Webhooks")

    def ready(self) -> None:
        from fraud.signals import fraud_event_recorded
        from vouchers.webhooks import receivers

        fraud_event_recorded.connect(receivers.fraud_event_recorded, dispatch_uid="webhooks.fraud_alert")
