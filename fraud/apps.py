from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "fraud"
    verbose_name = "Fraud checks"

    def ready(self) -> None:
        from fraud import checks  # noqa: F401  (registers the system checks)
