from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DashboardConfig(AppConfig):
    name = "vouchers.dashboard"
    label = "dashboard"
    verbose_name = _("Console")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        # The admin's home is the merchant's dashboard (see views.dashboard_callback).
        admin.site.index_template = "dashboard/index.html"
