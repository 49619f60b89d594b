"""The baseline: the least a DRF endpoint that writes one row can do.

No authentication, no permissions, no throttles, no idempotency: JSON in, one
`UPDATE ... WHERE id = %s` in autocommit, JSON out. Served by the same gunicorn
configuration and settings as the product, it is the framework's ceiling on this
machine, against which the storefront API's figures are read.
"""

from __future__ import annotations

from django.db.models import F
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.baseline.models import BenchCounter


class BaselineInput(serializers.Serializer):
    id = serializers.IntegerField(min_value=1)


class BaselineApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def post(self, request):
        serializer = BaselineInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        pk = serializer.validated_data["id"]
        updated = BenchCounter.objects.filter(pk=pk).update(counter=F("counter") + 1)
        return Response({"id": pk, "updated": updated})
