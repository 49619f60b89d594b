"""Users and groups in the console's theme (django-unfold's forms), with readable permission names.

Django's stock permission picker shows "app | model | Can …" rows; here each permission
reads "Batch: Can change batch", never an `app.codename`.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, Permission, User
from django.forms import ModelMultipleChoiceField
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from config.admin_console import ConsoleModelAdmin


class PermissionChoiceField(ModelMultipleChoiceField):
    def label_from_instance(self, obj: Permission) -> str:
        model = obj.content_type.model_class()
        owner = str(model._meta.verbose_name).capitalize() if model else obj.content_type.name
        return f"{owner}: {obj.name}"


def _permission_field(db_field, kwargs):
    if db_field.name in {"permissions", "user_permissions"}:
        kwargs["queryset"] = Permission.objects.select_related("content_type")
        kwargs["form_class"] = PermissionChoiceField
    return kwargs


for model in (User, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ConsoleModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return super().formfield_for_manytomany(db_field, request, **_permission_field(db_field, kwargs))


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ConsoleModelAdmin):
    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return super().formfield_for_manytomany(db_field, request, **_permission_field(db_field, kwargs))
