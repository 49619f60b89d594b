"""Appends to one chain from many connections at once: numbered without gaps or forks (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.concurrency import run_concurrently
from tests.factories import MerchantFactory
from vouchers.audit.models import AuditChainHead, AuditEntry
from vouchers.audit.services import record_audit, verify_chains

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_appends_to_new_and_existing_chains_form_one_chain_each():
    # given two merchants whose chains do not exist yet
    merchants = [MerchantFactory().pk for _ in range(2)]

    def append(i: int) -> int:
        with transaction.atomic():
            return record_audit(action="batch_paused", merchant_id=merchants[i % 2],
                                details={"n": i}).seq

    # when 40 appends race, 8 at a time, on both chains
    seqs = run_concurrently(append, tasks=40, workers=8)
    # then each chain is numbered 1..20 exactly once and verifies
    for merchant_id in merchants:
        chain = f"merchant:{merchant_id}"
        assert sorted(AuditEntry.objects.filter(chain=chain).values_list("seq", flat=True)) == list(
            range(1, 21))
        assert AuditChainHead.objects.get(chain=chain).seq == 20
    assert sorted(seqs) == sorted(list(range(1, 21)) * 2)
    assert verify_chains()[1] == []
