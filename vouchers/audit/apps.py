from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vouchers.audit"
    label = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from fraud.signals import lockout_lifted
        from vouchers.audit import receivers
        from vouchers.audit.guards import ensure_append_only_triggers

        # A flush (tests' TransactionTestCase) drops nothing on PostgreSQL (TRUNCATE fires no
        # row trigger) but needs the SQLite delete trigger out of the way; post_migrate runs
        # after every migrate and flush and puts the triggers back.
        post_migrate.connect(ensure_append_only_triggers, sender=self)
        lockout_lifted.connect(receivers.lockout_lifted, dispatch_uid="audit.lockout_lifted")
