"""Settings for the API benchmarks: the product's settings plus the bench-only baseline app.

Serve with `DJANGO_SETTINGS_MODULE=bench.settings`; everything else (database, cache,
keys, rate limits) comes from the same environment variables as the product.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.baseline.apps.BaselineConfig"]
ROOT_URLCONF = "bench.urls"
