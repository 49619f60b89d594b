"""Tenancy: a merchant's staff see and act on their own merchant's rows only.

Invariant 8 of docs/invariants.md. A staff user with a staff row is scoped to that
row's merchant; a superuser sees everything; any other staff user sees nothing,
whatever Django permissions they hold. The admins of every app build on these rules
(`config.admin_console.MerchantScopedAdmin`), and so do the console's own pages.

This module names no app's model, so every app may import it:
- the staff member's merchant is read through the user model's reverse accessor
  `merchant_staff` (the one-to-one a merchant's staff row keeps to its user) and that
  row's `merchant` key. The accessor is part of the user model the moment the app
  owning merchants is loaded, needs no request middleware (a page rendered for a
  request built by hand is scoped the same) and costs the same one query as before;
- how each model reaches its merchant is registered by the app that owns the model
  (`register_merchant_paths`, called from its AppConfig.ready). A model registered by
  nobody, and given no paths by its admin, is shown to no one but a superuser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

# The user model's reverse accessor to a staff member's row, and that row's merchant key.
STAFF_ACCESSOR = "merchant_staff"
STAFF_MERCHANT_FIELD = "merchant"

# How each merchant-owned model reaches its merchant (one or more lookups, OR-ed),
# filled by the apps owning the models.
MERCHANT_PATHS: dict[type[Model], tuple[str, ...]] = {}

# What a choice list of a model needs to print its rows without a query per row.
CHOICE_SELECT_RELATED: dict[type[Model], tuple[str, ...]] = {}


def register_merchant_paths(
    paths: Mapping[type[Model], tuple[str, ...]],
    *,
    choice_select_related: Mapping[type[Model], tuple[str, ...]] | None = None,
) -> None:
    """Declare how models reach their merchant (and what their choice lists select)."""
    MERCHANT_PATHS.update(paths)
    CHOICE_SELECT_RELATED.update(choice_select_related or {})


def is_unscoped(request: HttpRequest) -> bool:
    """A superuser sees every merchant's objects."""
    user = request.user
    return bool(user.is_active and user.is_superuser)


def staff_merchant(request: HttpRequest) -> Model | None:
    """The merchant the logged-in staff member works for (one query, cached on the request)."""
    if not hasattr(request, "_staff_merchant"):
        user = request.user
        merchant = None
        if user.is_authenticated and user.is_active and user.is_staff:
            staff_model = cast(type[Model], user._meta.get_field(STAFF_ACCESSOR).related_model)
            row = (
                staff_model._default_manager.select_related(STAFF_MERCHANT_FIELD)
                .filter(user=user).first()
            )
            merchant = getattr(row, STAFF_MERCHANT_FIELD) if row is not None else None
        request._staff_merchant = merchant  # type: ignore[attr-defined]  # a per-request memo
    return request._staff_merchant  # type: ignore[attr-defined]


def has_tenant(request: HttpRequest) -> bool:
    """Whether the user may see anything at all in the console."""
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
    if model in CHOICE_SELECT_RELATED:
        queryset = queryset.select_related(*CHOICE_SELECT_RELATED[model])
    if model in MERCHANT_PATHS:
        queryset = scope_queryset(queryset, request)
    return queryset
