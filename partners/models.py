"""Partner brands that supply or honour cross-brand benefits.

Agreements, the settlement ledger and statements attach here (settlement issue).
"""

from django.db import models


class Partner(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    contact_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
