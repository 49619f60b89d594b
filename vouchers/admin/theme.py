"""The console's look shared by every admin: django-unfold's ModelAdmin, plain titles, labelled fields.

- Lists are titled by what they hold ("Batches"), not "Select batch to change".
- JSON columns (a batch's format, an issuance's context, an event's details, a fraud
  event's context) are shown as labelled fields, never as raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise

# Field names of the JSON columns, as people read them.
LABELS: dict[str, str | StrPromise] = {
    "length": _("length"),
    "alphabet": _("alphabet"),
    "prefix": _("prefix"),
    "group": _("group size"),
    "group_size": _("group size"),
    "separator": _("separator"),
    "check": _("check character"),
    "check_char": _("check character"),
    "customer": _("customer"),
    "ip": _("IP address"),
    "ip_group": _("IP network"),
    "device_id": _("device"),
    "email": _("e-mail"),
    "reason": _("reason"),
    "quantity": _("quantity"),
    "redemption": _("redemption"),
    "count": _("count"),
    "valid_until": _("valid until"),
}


def _label(key: str) -> str:
    return capfirst(str(LABELS.get(key, key.replace("_", " "))))


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for key in sorted(value):
            label = _label(str(key)) if not prefix else f"{prefix} › {_label(str(key))}"
            rows += _flatten(value[key], label)
        return rows
    if isinstance(value, list | tuple):
        if all(not isinstance(item, Mapping | list | tuple) for item in value):
            return [(prefix, ", ".join(str(item) for item in value) or "–")]
        rows = []
        for index, item in enumerate(value, start=1):
            rows += _flatten(item, f"{prefix} {index}")
        return rows
    if value is None or value == "":
        return [(prefix, "–")]
    if isinstance(value, bool):
        return [(prefix, str(_("yes") if value else _("no")))]
    return [(prefix, str(value))]


def labelled(value) -> str:
    """A JSON value as a small two-column table of labelled fields (nested keys joined by ›)."""
    rows = _flatten(value or {})
    if not rows:
        return "–"
    return format_html(
        '<table class="labelled-fields"><tbody>{}</tbody></table>',
        format_html_join(
            "", '<tr><th class="pr-4 text-left font-normal text-font-subtle-light">{}</th><td>{}</td></tr>',
            rows,
        ),
    )


class ConsoleModelAdmin(ModelAdmin):
    """Every admin of the console: the theme's ModelAdmin, lists titled by their contents."""

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": capfirst(self.opts.verbose_name_plural), **(extra_context or {})}
        return super().changelist_view(request, extra_context)
