"""System checks that speak on every start (runserver, migrate, check)."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def development_keys_in_use(app_configs, **kwargs):
    if not getattr(settings, "USING_DEV_KEYS", False):
        return []
    return [
        Warning(
            f"Codes are encrypted with development keys from {settings.DEV_KEYS_FILE}.",
            hint="Fine on a laptop. Production sets DJANGO_ENV=production and real keys.",
            id="vouchers.W001",
        )
    ]
