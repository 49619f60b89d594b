"""Input and output shapes of the storefront API (docs/api.md). No writes here."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vouchers.crypto import decrypt_code
from vouchers.models import Issuance
from vouchers.validity import code_expires_at


class CustomerContextInput(serializers.Serializer):
    """Who the storefront calls for: used by fraud checks, velocity limits and lockouts."""

    customer = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    ip = serializers.IPAddressField(required=False, allow_blank=True, default="",
                                    help_text="The end customer's IP address (not your server's).")
    device_id = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class IssuanceInput(CustomerContextInput):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=100, default=1)
    order_ref = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    reserve = serializers.BooleanField(required=False, default=False)


class CodeCheckInput(CustomerContextInput):
    code = serializers.CharField(max_length=128, trim_whitespace=True)


class RedemptionInput(CustomerContextInput):
    code = serializers.CharField(max_length=128, trim_whitespace=True)
    order_ref = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    location = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")


class ReversalInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ProductOutput(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    face_value = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    available = serializers.IntegerField(help_text="Codes in stock now.")


class IssuedCodeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField(help_text="The plaintext code. Shown only to the issuing storefront.")
    serial = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class IssuanceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Issuance.Status.choices)
    sku = serializers.CharField(source="product.sku")
    quantity = serializers.IntegerField()
    customer = serializers.CharField()
    order_ref = serializers.CharField()
    codes = serializers.SerializerMethodField(
        help_text="The codes, present only when status is `issued` (otherwise empty)."
    )
    reserved_until = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(IssuedCodeOutput(many=True))
    def get_codes(self, issuance: Issuance) -> list[dict]:
        if issuance.status != Issuance.Status.ISSUED:
            return []
        # The fast path hands over the codes it claimed (with their batch's window).
        codes = getattr(issuance, "claimed_codes", None)
        if codes is None:
            codes = issuance.codes.select_related("batch").order_by("pk")
        return [
            {
                "id": code.pk,
                "code": decrypt_code(code),
                "serial": code.serial,
                "expires_at": code_expires_at(code, code.batch),
            }
            for code in codes
        ]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["codes"] = IssuedCodeOutput(data["codes"], many=True).data
        return data


class CodeStatusOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["issued", "redeemed", "expired", "void"])
    sku = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    redeemed_at = serializers.DateTimeField(allow_null=True)


class RedemptionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField(source="code.batch.product.sku")
    code_last4 = serializers.CharField(source="code.last4")
    face_value = serializers.DecimalField(source="code.batch.product.face_value", max_digits=12,
                                          decimal_places=2)
    currency = serializers.CharField(source="code.batch.product.currency")
    redeemed_at = serializers.DateTimeField()


class ReversalOutput(serializers.Serializer):
    id = serializers.UUIDField()
    reversed_at = serializers.DateTimeField()
