"""Tenancy for the admin: a merchant's staff see and act on their own merchant's objects only.

Invariant 8 of docs/invariants.md. A user with a MerchantStaff row is scoped to that merchant in
every queryset, choice field and list filter of the admins built on
`MerchantScopedAdmin`; a superuser sees everything; any other staff user sees
nothing (no module, no object), whatever Django permissions they hold.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from unfold.admin import TabularInline

from vouchers.admin.theme import ConsoleModelAdmin
from vouchers.models import (
    Batch,
    Code,
    CodeEvent,
    Issuance,
    Merchant,
    MerchantStaff,
    Product,
    Redemption,
    Storefront,
    StorefrontAPIKey,
)

# How each merchant-owned model reaches its merchant (one or more paths, OR-ed).
MERCHANT_PATHS: dict[type[Model], tuple[str, ...]] = {
    Merchant: ("pk",),
    MerchantStaff: ("merchant",),
    Storefront: ("merchant",),
    StorefrontAPIKey: ("storefront__merchant",),
    Product: ("merchant",),
    Batch: ("product__merchant",),
    Code: ("batch__product__merchant",),
    Issuance: ("storefront__merchant",),
    Redemption: ("code__batch__product__merchant",),
    # Events of a batch or its codes name the batch; events of an issuance may name only it.
    CodeEvent: ("batch__product__merchant", "issuance__storefront__merchant"),
}

# What a choice list of each model needs to print its rows without a query per row.
_CHOICE_SELECT_RELATED: dict[type[Model], tuple[str, ...]] = {
    Batch: ("product",),
    Storefront: ("merchant",),
    Code: ("batch",),
}


def is_unscoped(request: HttpRequest) -> bool:
    """A superuser sees every merchant's objects."""
    user = request.user
    return bool(user.is_active and user.is_superuser)


def staff_merchant(request: HttpRequest) -> Merchant | None:
    """The merchant the logged-in staff member works for (one query, cached on the request)."""
    if not hasattr(request, "_vouchers_staff_merchant"):
        user = request.user
        merchant = None
        if user.is_authenticated and user.is_active and user.is_staff:
            merchant = Merchant.objects.filter(staff__user=user).first()
        request._vouchers_staff_merchant = merchant  # type: ignore[attr-defined]  # a per-request memo
    return request._vouchers_staff_merchant  # type: ignore[attr-defined]


def has_tenant(request: HttpRequest) -> bool:
    """Whether the user may see anything at all in the voucher admin."""
    return is_unscoped(request) or staff_merchant(request) is not None


def scope_queryset(
    queryset: QuerySet, request: HttpRequest, *, paths: tuple[str, ...] | None = None
) -> QuerySet:
    """Narrow `queryset` to the objects of the requesting user's merchant.

    `paths` (lookups reaching the merchant, OR-ed) default to MERCHANT_PATHS; a model
    with neither is shown to no one but a superuser.
    """
    if is_unscoped(request):
        return queryset
    merchant = staff_merchant(request)
    paths = paths or MERCHANT_PATHS.get(queryset.model)
    if merchant is None or paths is None:
        return queryset.none()
    condition = Q()
    for path in paths:
        condition |= Q(**{path: merchant.pk})
    return queryset.filter(condition)


def scoped_choices(model: type[Model], request: HttpRequest) -> QuerySet:
    """The rows of `model` a choice field or list filter may offer to this user."""
    queryset = model._default_manager.all()
    if model in _CHOICE_SELECT_RELATED:
        queryset = queryset.select_related(*_CHOICE_SELECT_RELATED[model])
    if model in MERCHANT_PATHS:
        queryset = scope_queryset(queryset, request)
    return queryset


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

    bound_merchant: Merchant | None = None
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
    - staff with no MerchantStaff row (and not superuser) get no permission at all.

    Models of other apps set `merchant_paths`; a model reachable by neither it nor
    MERCHANT_PATHS shows staff nothing (fail closed).
    """

    merchant_field: str | None = None
    # How this admin's model reaches its merchant, for a model MERCHANT_PATHS does not
    # name (e.g. another app's model with a `merchant` foreign key: ("merchant",)).
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


class ScopedInline(TabularInline):
    """An inline whose rows are scoped like the parent admin (defence in depth)."""

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs and db_field.related_model in MERCHANT_PATHS:
            kwargs["queryset"] = scoped_choices(db_field.related_model, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
