"""What every app's admin builds on: the console's look, its merchant scoping, its own pages.

The look (django-unfold's ModelAdmin, plain titles, labelled fields):
- Lists are titled by what they hold ("Batches"), not "Select batch to change".
- JSON columns (a batch's format, an issuance's context, an event's details, a fraud
  event's context) are shown as labelled fields, never as raw JSON.

The scoping (`MerchantScopedAdmin`, `ScopedInline`, `ScopedRelatedFilter`,
`TenantModelForm`) applies the rules of `config.tenancy` to querysets, choices,
filters, forms and permissions. The pages behind an admin's buttons render inside the
admin's frame with `render_page`.

Names no app's model: every app's admin may import it (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from config.tenancy import (
    MERCHANT_PATHS,
    has_tenant,
    is_unscoped,
    scope_queryset,
    scoped_choices,
    staff_merchant,
)

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


# --- merchant scoping ---------------------------------------------------------------

class ScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A related-object list filter offering only the user's own objects as choices.

    Django's stock filter lists every row of the related table, which would show
    one merchant another merchant's products and batches.
    """

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        queryset = scoped_choices(field.related_model, request)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in queryset]


class TenantModelForm(forms.ModelForm):
    """A model form whose merchant is fixed by the staff row, not chosen in the form.

    The merchant field is left out of the form, so Django would skip every unique
    constraint naming it (e.g. one SKU per merchant) and the database would answer
    with an IntegrityError (a 500). Setting the merchant before validation and
    keeping it in the validated fields turns a duplicate into a form error.
    """

    bound_merchant: Model | None = None
    merchant_field: str | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.bound_merchant is not None and self.merchant_field:
            setattr(self.instance, self.merchant_field, self.bound_merchant)

    def _get_validation_exclusions(self):
        excluded = super()._get_validation_exclusions()
        if self.bound_merchant is not None and self.merchant_field:
            excluded.discard(self.merchant_field)
        return excluded


class MerchantScopedAdmin(ConsoleModelAdmin):
    """The one place where the admin is scoped to the staff member's merchant.

    - querysets (changelist, change, delete, history, actions) hold own objects only,
      so another merchant's object is "not found" (a redirect), never shown;
    - foreign-key and many-to-many choices offer own objects only;
    - `merchant_field` (the model's own merchant foreign key) is hidden from staff
      and set from their staff row, so they cannot create objects for another merchant;
    - staff with no staff row (and not superuser) get no permission at all.

    An admin whose model is not registered in `config.tenancy.MERCHANT_PATHS` sets
    `merchant_paths`; a model reachable by neither shows staff nothing (fail closed).
    """

    merchant_field: str | None = None
    # How this admin's model reaches its merchant, for a model MERCHANT_PATHS does not
    # name (e.g. a model with a `merchant` foreign key: ("merchant",)).
    merchant_paths: tuple[str, ...] | None = None
    form: type[forms.ModelForm] = TenantModelForm

    # --- querysets --------------------------------------------------------------

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request, paths=self.merchant_paths)

    # --- permissions ------------------------------------------------------------

    def has_module_permission(self, request):
        return has_tenant(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return has_tenant(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return has_tenant(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return has_tenant(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return has_tenant(request) and super().has_delete_permission(request, obj)

    # --- forms ------------------------------------------------------------------

    def binds_merchant(self, request) -> bool:
        return bool(self.merchant_field) and not is_unscoped(request)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if self.binds_merchant(request):
            exclude.append(self.merchant_field)
        return exclude

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if self.binds_merchant(request) and self.merchant_field in fields:
            fields.remove(self.merchant_field)
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if self.binds_merchant(request):
            form = type(
                form.__name__, (form,),
                {"bound_merchant": staff_merchant(request), "merchant_field": self.merchant_field},
            )
        return form

    def save_model(self, request, obj, form, change):
        if self.binds_merchant(request):
            setattr(obj, self.merchant_field, staff_merchant(request))
        super().save_model(request, obj, form, change)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs and db_field.related_model in MERCHANT_PATHS:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "queryset" not in kwargs and db_field.related_model in MERCHANT_PATHS:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # --- lists ------------------------------------------------------------------

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if self.binds_merchant(request) and self.merchant_field in display:
            display.remove(self.merchant_field)
        return display

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if self.binds_merchant(request) and self.merchant_field in filters:
            filters.remove(self.merchant_field)
        return filters


class ReadOnlyPermissions:
    """Nothing is added, changed or deleted through this admin or inline: it is for reading.

    Put it first among the bases, so that it answers before the model admin's own checks.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RecordAdmin(ReadOnlyPermissions, MerchantScopedAdmin):
    """Records are written by services only: here they are read, never added, edited or deleted."""

    actions: Sequence[str] | None = None


def superuser_only(request: HttpRequest) -> bool:
    """The test of what only a superuser may see or do (a merchant's slug, a partner's keys)."""
    return bool(request.user.is_active and request.user.is_superuser)


class ScopedInline(TabularInline):
    """An inline whose rows are scoped like the parent admin (defence in depth)."""

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs and db_field.related_model in MERCHANT_PATHS:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- the console's own pages ------------------------------------------------------------

def render_page(
    model_admin, request: HttpRequest, template: str, *, title: str | StrPromise, media=None,
    status: int = 200,
    **context,
) -> TemplateResponse:
    """Render one of our pages inside the admin's frame (header, breadcrumbs, sidebar)."""
    page_media = model_admin.media if media is None else model_admin.media + media
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": title,
            "media": page_media,
            **context,
        },
        status=status,
    )


def posted(request: HttpRequest):
    """The submitted data of a POST (even an empty one, which must still bind the form)."""
    return request.POST if request.method == "POST" else None
