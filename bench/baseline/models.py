from django.db import models


class BenchCounter(models.Model):
    """A bench-only row the baseline endpoint increments; never used by the product."""

    counter = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"counter {self.pk} = {self.counter}"
