"""Ask, then act: the one skeleton of the admin pages that confirm before they change something.

A page of this kind shows a form (on a GET, or again when it refuses a submission) and
acts on a valid submission: a batch's pause, resume or void; a review decision; a new
or revoked API key; canary codes; a revealed code; generating, importing or finding
codes; a partner's key, payment or statement close; and the list actions that ask for
a reason first (void, extend the validity, deny). Each page is a subclass that says
three things:

- `make_form(data)`: its form, bound to the submitted data (None when nothing was submitted);
- `apply(form)`: what a valid submission does, answered with a response (a redirect, or a
  page shown once such as a new key), or None after adding the refusal to the form, which
  asks again;
- `ask(form)`: the page that asks (its own template and context).

`ObjectConfirmView` is the same for a page about one object of a model admin: it finds
the object in the admin's scoped queryset (a missing or foreign one redirects, as the
admin's own change page does) and checks the page's permission before anything else.
`SelectionConfirmView` is the same for a list action over the selected rows.
A page keeps its own templates, messages, audit rows and redirects; only the order of
the steps is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase


class ConfirmView(ABC):
    """Ask (a GET, or a refused submission), then act on a valid submission."""

    def __init__(self, model_admin, request: HttpRequest) -> None:
        self.model_admin = model_admin
        self.request = request

    def submitted(self) -> bool:
        """Whether the request submits the form (a POST; a list action's page says "confirm")."""
        return self.request.method == "POST"

    @abstractmethod
    def make_form(self, data):
        """The page's form, bound to `data` (None when nothing was submitted)."""

    @abstractmethod
    def apply(self, form) -> HttpResponse | None:
        """Act on a valid form: a response, or None after adding the refusal to the form."""

    @abstractmethod
    def ask(self, form) -> HttpResponse:
        """The page that asks, with the form (and its errors, after a refused submission)."""

    def respond(self) -> HttpResponse:
        submitted = self.submitted()
        form = self.make_form(self.request.POST if submitted else None)
        if submitted and form.is_valid():
            response = self.apply(form)
            if response is not None:
                return response
        return self.ask(form)


class ObjectConfirmView(ConfirmView):
    """A ConfirmView about one object of the model admin (`self.obj`)."""

    obj: Any

    def find(self, object_id: str) -> Any:
        """The object, from the admin's scoped queryset, or the admin's redirect when there is none."""
        found = self.model_admin.get_object(self.request, unquote(object_id))
        if found is None:
            return self.model_admin._get_obj_does_not_exist_redirect(
                self.request, self.model_admin.opts, object_id
            )
        return found

    @abstractmethod
    def permitted(self) -> bool:
        """Whether the user may use this page for `self.obj`."""

    @classmethod
    def view(cls, model_admin, request: HttpRequest, object_id: str, **options) -> HttpResponse:
        """Find the object, check the permission, then ask or act."""
        page = cls(model_admin, request, **options)
        found = page.find(object_id)
        if isinstance(found, HttpResponseBase):
            return found  # type: ignore[return-value]  # the admin's redirect is an HttpResponse
        page.obj = found
        if not page.permitted():
            raise PermissionDenied
        return page.respond()


class SelectionConfirmView(ConfirmView):
    """A ConfirmView for a list action (`self.rows`, the selected objects) that asks first.

    The action's page posts back to the list with "confirm"; a valid one acts and
    returns to the list (as an action that answers nothing does), with the messages
    the action left.
    """

    def __init__(self, model_admin, request: HttpRequest, rows: list) -> None:
        super().__init__(model_admin, request)
        self.rows = rows

    def submitted(self) -> bool:
        return "confirm" in self.request.POST

    def back_to_the_list(self) -> HttpResponse:
        return HttpResponseRedirect(self.request.get_full_path())
