"""The abstract API key both apps' keys are (djangorestframework-api-key, hashed).

A storefront's key (`vouchers.StorefrontAPIKey`) and a partner's key
(`partners.PartnerAPIKey`) are the package's key with one owner each. The package's
fields are declared here once, as it declares them (same columns), but named with
strings the project's catalogue translates: the package names most of them in English
only. A concrete key adds its owner and its own names in a Meta that inherits this
one (`class Meta(TranslatedAPIKey.Meta)`), which keeps the package's ordering (a Meta
of its own would drop it: an abstract model's Meta is inherited only when named).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey


class TranslatedAPIKey(AbstractAPIKey):
    """A hashed API key (only the prefix is stored in clear); subclasses name what it acts for."""

    id = models.CharField(_("id"), max_length=150, unique=True, primary_key=True, editable=False)
    prefix = models.CharField(_("prefix"), max_length=8, unique=True, editable=False)
    hashed_key = models.CharField(_("hashed key"), max_length=150, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    name = models.CharField(
        _("name"), max_length=50, blank=False, default=None,
        help_text=_("A free-form name for the API key. Need not be unique. 50 characters max."),
    )
    revoked = models.BooleanField(
        _("revoked"), blank=True, default=False,
        help_text=_("If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)"),
    )
    expiry_date = models.DateTimeField(
        _("Expires"), blank=True, null=True,
        help_text=_("Once API key expires, clients cannot use it anymore."),
    )

    class Meta:
        abstract = True
        ordering = ("-created",)  # as the API key package orders its keys
