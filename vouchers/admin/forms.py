"""Forms of the voucher admin's own pages (generate, import, API keys, batch status, find a code,
review decisions, canaries).

Forms validate input and build arguments; the work is done by the services the views call.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin import widgets
from django.utils.translation import gettext_lazy as _

from vouchers.codeformat import MAX_CODE_LENGTH, UNAMBIGUOUS_ALPHABET, CodeFormat
from vouchers.services.api_keys import MAX_KEY_NAME_LENGTH
from vouchers.services.batch_status import MAX_REASON_LENGTH
from vouchers.services.canaries import MAX_CANARIES_PER_CALL
from vouchers.services.generation import MAX_GENERATED_PER_BATCH

# A web request that generates more than this would outlive a worker's timeout.
ADMIN_MAX_GENERATED = min(1_000_000, MAX_GENERATED_PER_BATCH)


class ValidityWindowMixin(forms.Form):
    valid_from = forms.SplitDateTimeField(
        required=False, widget=widgets.AdminSplitDateTime,
        help_text=_("Optional. Codes cannot be sold or redeemed before this moment."),
    )
    valid_until = forms.SplitDateTimeField(
        required=False, widget=widgets.AdminSplitDateTime,
        help_text=_("Optional. Codes expire at this moment."),
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("valid_from"), cleaned.get("valid_until")
        if start and end and end <= start:
            self.add_error("valid_until", "The validity window must end after it starts.")
        return cleaned


class GenerateCodesForm(ValidityWindowMixin, forms.Form):
    product: forms.ModelChoiceField = forms.ModelChoiceField(queryset=None)
    count = forms.IntegerField(
        min_value=1, max_value=ADMIN_MAX_GENERATED,
        help_text=f"How many codes to generate (at most {ADMIN_MAX_GENERATED:,} from the admin).",
    )
    length = forms.IntegerField(
        required=False, min_value=4, max_value=48,
        help_text=_("Random characters per code. Empty: enough for 80 bits of entropy."),
    )
    alphabet = forms.CharField(
        initial=UNAMBIGUOUS_ALPHABET, max_length=128, strip=True,
        help_text=_("Characters codes are drawn from. The default has no 0/O or 1/I/L."),
    )
    # A field named like Form.prefix: the form metaclass takes declared fields off the class.
    prefix = forms.CharField(required=False, max_length=16, strip=True)  # type: ignore[assignment]
    group = forms.IntegerField(
        label=_("Grouping"), required=False, min_value=0, max_value=MAX_CODE_LENGTH, initial=4,
        help_text=_("Characters per hyphen-separated group; 0 for none."),
    )
    check_char = forms.BooleanField(
        label=_("Check character"), required=False,
        help_text=_("Append a check character that catches typing mistakes."),
    )
    reference = forms.CharField(required=False, max_length=200)

    field_order = [
        "product", "count", "length", "alphabet", "prefix", "group", "check_char",
        "valid_from", "valid_until", "reference",
    ]

    def __init__(self, *args, products, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = products  # type: ignore[attr-defined]  # a ModelChoiceField

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned["fmt"] = CodeFormat(
                length=cleaned.get("length"), alphabet=cleaned["alphabet"],
                prefix=cleaned.get("prefix") or "", group=cleaned.get("group") or 0,
                check_char=bool(cleaned.get("check_char")),
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


class ImportCodesForm(ValidityWindowMixin, forms.Form):
    ENCODINGS = [("", "Detect"), ("utf-8", "UTF-8"), ("gb18030", "GB18030 (GBK, GB2312)")]
    FORMATS = [
        ("", "Detect from the file"), ("csv", "CSV"), ("xlsx", "Excel (.xlsx)"),
        ("txt", "Text, one code a line"),
    ]

    product: forms.ModelChoiceField = forms.ModelChoiceField(queryset=None)
    file = forms.FileField(help_text=_("The supplier's file: CSV, Excel (.xlsx) or plain text."))
    encoding = forms.ChoiceField(choices=ENCODINGS, required=False)
    file_format = forms.ChoiceField(label=_("Format"), choices=FORMATS, required=False)
    skip_invalid = forms.BooleanField(
        required=False,
        help_text=_(
            "Keep the valid rows and skip the bad ones. Unticked, one bad row rejects the whole file."
        ),
    )
    case_sensitive = forms.BooleanField(
        required=False, help_text=_("Codes differ by letter case (abc and ABC are two codes)."),
    )
    allow_weak_codes = forms.BooleanField(
        required=False, help_text=_("Accept codes from a small (guessable) code space. Use with care."),
    )
    reference = forms.CharField(required=False, max_length=200, help_text=_("Empty: the file name."))

    field_order = [
        "product", "file", "encoding", "file_format", "skip_invalid", "case_sensitive",
        "allow_weak_codes", "valid_from", "valid_until", "reference",
    ]

    def __init__(self, *args, products, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = products  # type: ignore[attr-defined]  # a ModelChoiceField


class CreateAPIKeyForm(forms.Form):
    name = forms.CharField(
        max_length=MAX_KEY_NAME_LENGTH, strip=True,
        help_text=_("Say where the key will live, e.g. “production web shop”."),
    )


class BatchStatusForm(forms.Form):
    """Confirms a status change; voiding also needs a reason (it cannot be undone)."""

    reason = forms.CharField(
        required=False, max_length=MAX_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, reason_required: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required
        if not reason_required:
            del self.fields["reason"]


class FindCodeForm(forms.Form):
    """A code typed by staff, sent by POST so it appears in no URL, log or history."""

    code = forms.CharField(
        max_length=200, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "size": 40}),
    )


# deny_review keeps this much of a denial's reason in the issuance's events.
MAX_DENIAL_REASON_LENGTH = 500


class ReviewDecisionForm(forms.Form):
    """Confirms a review decision; a denial also needs a reason (kept in the issuance's events)."""

    reason = forms.CharField(
        required=False, max_length=MAX_DENIAL_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the order is refused (kept in the issuance's history, not sent to the storefront)."),
    )

    def __init__(self, *args, reason_required: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required
        if not reason_required:
            del self.fields["reason"]


class PlantCanariesForm(forms.Form):
    count = forms.IntegerField(
        min_value=1, max_value=MAX_CANARIES_PER_CALL, initial=5,
        help_text=f"How many canary codes to plant (1 to {MAX_CANARIES_PER_CALL}).",
    )


class ExtendValidityForm(forms.Form):
    """A new end of validity for the selected batches, and why (recorded in each batch's event)."""

    valid_until = forms.DateTimeField(
        label=_("Valid until (UTC)"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=MAX_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3}),
    )
