from django.apps import AppConfig


class BaselineConfig(AppConfig):
    """Bench-only app. It has no migrations: `migrate --run-syncdb` creates its table."""

    name = "bench.baseline"
    label = "bench_baseline"
    default_auto_field = "django.db.models.BigAutoField"
