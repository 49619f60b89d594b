"""The audit log: append-only at every layer, hash-chained per merchant, verified by verify_audit."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from tests.factories import UserFactory
from tests.vouchers.audit.conftest import tamper
from vouchers.audit.exceptions import AppendOnlyViolation
from vouchers.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry
from vouchers.audit.services import AuditReasonRequired, entry_digest, record_audit, verify_chains


def verify() -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError as exc:
        return 1, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def three_entries(merchant):
    user = UserFactory(username="auditor")
    return [
        record_audit(action="batch_paused", merchant_id=merchant.pk, user=user, target_type="vouchers.batch",
                     target_id=str(n), details={"n": n})
        for n in (1, 2, 3)
    ]


def test_entries_of_a_merchant_are_numbered_and_chained(three_entries, merchant):
    # then
    first, second, third = three_entries
    assert [e.seq for e in three_entries] == [1, 2, 3]
    assert {e.chain for e in three_entries} == {f"merchant:{merchant.pk}"}
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert first.actor == f"user:{first.user_id}"
    assert first.actor_name == "auditor"
    head = AuditChainHead.objects.get(chain=f"merchant:{merchant.pk}")
    assert (head.seq, head.hash) == (3, third.hash)
    stored = AuditEntry.objects.get(pk=second.pk)
    assert entry_digest(stored) == second.hash


def test_each_merchant_and_the_global_log_have_their_own_chain(merchant, other_merchant):
    # when
    a = record_audit(action="x", merchant_id=merchant.pk)
    b = record_audit(action="x", merchant_id=other_merchant.pk)
    g = record_audit(action="x", merchant_id=None)
    # then
    assert (a.seq, b.seq, g.seq) == (1, 1, 1)
    assert g.chain == "global"
    assert g.actor == "system"


def test_intact_log_verifies(three_entries, merchant):
    # when
    status, out, err = verify()
    # then
    assert status == 0
    assert f"merchant:{merchant.pk}: 3 entries, head #3 {three_entries[2].hash}" in out
    assert "Audit log intact: 1 chain(s) verified." in out
    assert err == ""


def test_the_model_refuses_to_change_or_delete_an_entry(three_entries):
    entry = AuditEntry.objects.get(pk=three_entries[0].pk)
    entry.reason = "rewritten"
    with pytest.raises(AppendOnlyViolation):
        entry.save()
    with pytest.raises(AppendOnlyViolation):
        entry.delete()
    with pytest.raises(AppendOnlyViolation):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(AppendOnlyViolation):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == ""
    assert AuditEntry.objects.count() == 3


@pytest.mark.parametrize("statement", [
    "UPDATE audit_auditentry SET reason = 'rewritten'",
    "DELETE FROM audit_auditentry",
])
def test_the_database_refuses_raw_updates_and_deletes(three_entries, statement):
    # when an UPDATE or DELETE bypasses the ORM
    refused = pytest.raises(DatabaseError, match="append-only")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    # then nothing changed
    assert AuditEntry.objects.count() == 3
    assert set(AuditEntry.objects.values_list("reason", flat=True)) == {""}
    assert verify()[0] == 0


def test_verify_finds_a_changed_entry(three_entries, merchant):
    # given an intruder rewrites the reason of the second entry
    tamper("UPDATE audit_auditentry SET reason = 'nothing to see' WHERE id = %s", [three_entries[1].pk])
    # when
    status, _, err = verify()
    # then
    assert status == 1
    assert (f"BROKEN merchant:{merchant.pk} #2 (entry id {three_entries[1].pk}): "
            "its fields do not match its hash (changed or forged)") in err
    assert "1 problem(s)" in err


def test_verify_finds_a_changed_entry_whose_hash_was_recomputed_without_the_key(three_entries, merchant):
    # given an intruder changes the details and recomputes a plain SHA-256 for the row
    import hashlib

    forged = hashlib.sha256(b"anything").hexdigest()
    tamper("UPDATE audit_auditentry SET actor_name = 'someone', hash = %s WHERE id = %s",
           [forged, three_entries[2].pk])
    # when
    reports, findings = verify_chains()
    # then the row itself and the head both disagree
    assert [(f.seq, f.problem) for f in findings] == [
        (3, "its fields do not match its hash (changed or forged)"),
        (None, "the head's hash does not match the last entry"),
    ]


def test_verify_finds_a_deleted_entry(three_entries, merchant):
    # given an intruder deletes the second entry
    tamper("DELETE FROM audit_auditentry WHERE id = %s", [three_entries[1].pk])
    # when
    reports, findings = verify_chains()
    # then
    assert [(f.seq, f.problem) for f in findings] == [
        (2, "entries #2 to #2 are missing"),
        (3, "does not follow the entry before it (deleted or inserted)"),
    ]
    assert verify()[0] == 1


def test_verify_finds_a_deleted_last_entry(three_entries, merchant):
    # given an intruder deletes the newest entry (no entry follows it to notice)
    tamper("DELETE FROM audit_auditentry WHERE id = %s", [three_entries[2].pk])
    # when
    reports, findings = verify_chains()
    # then the chain's head does
    assert [str(f) for f in findings] == [
        f"merchant:{merchant.pk}: the last entries are missing: the head is at #3, the log ends at #2"
    ]


def test_verify_finds_an_inserted_entry(three_entries, merchant):
    # given an intruder inserts a row between #1 and #2 by renumbering, chaining it to #1
    first = three_entries[0]
    tamper("UPDATE audit_auditentry SET seq = seq + 1000 WHERE chain = %s AND seq >= 2", [first.chain])
    tamper("UPDATE audit_auditentry SET seq = seq - 999 WHERE chain = %s AND seq >= 1000", [first.chain])
    columns = ("chain, seq, merchant_id, action, actor, actor_name, target_type, target_id, target_label, "
               "reason, details, created_at, prev_hash, hash")
    tamper(
        f"INSERT INTO audit_auditentry ({columns}) "  # noqa: S608
        "SELECT chain, 2, merchant_id, 'api_key_created', actor, actor_name, target_type, target_id, "
        "target_label, 'planted', details, created_at, hash, hash FROM audit_auditentry WHERE id = %s",
        [first.pk],
    )
    # when
    reports, findings = verify_chains()
    problems = [(f.seq, f.problem) for f in findings]
    # then the planted row does not hash, the renumbered rows no longer hash, the head is behind
    assert problems == [
        (2, "its fields do not match its hash (changed or forged)"),
        (3, "its fields do not match its hash (changed or forged)"),
        (4, "its fields do not match its hash (changed or forged)"),
        (None, "entries after #3 were added behind the log's back (the log ends at #4)"),
    ]
    assert verify()[0] == 1


def test_verify_finds_an_entry_appended_behind_the_logs_back(three_entries, merchant):
    # given a row appended after the last one with SQL (the head does not know it)
    last = three_entries[2]
    columns = ("chain, seq, merchant_id, action, actor, actor_name, target_type, target_id, target_label, "
               "reason, details, created_at, prev_hash, hash")
    tamper(
        f"INSERT INTO audit_auditentry ({columns}) "  # noqa: S608
        "SELECT chain, 4, merchant_id, action, actor, actor_name, target_type, target_id, target_label, "
        "reason, details, created_at, hash, hash FROM audit_auditentry WHERE id = %s",
        [last.pk],
    )
    # when
    reports, findings = verify_chains()
    # then
    assert [(f.seq, f.problem) for f in findings] == [
        (4, "its fields do not match its hash (changed or forged)"),
        (None, "entries after #3 were added behind the log's back (the log ends at #4)"),
    ]


def test_a_required_reason_and_secrets_in_details_are_refused_and_nothing_is_written(merchant):
    with pytest.raises(AuditReasonRequired):
        record_audit(action="code_revealed", merchant_id=merchant.pk, reason="  ", reason_required=True)
    with pytest.raises(ValueError, match="secrets"):
        record_audit(action="code_revealed", merchant_id=merchant.pk, details={"code": "X"})
    assert AuditEntry.objects.count() == 0
    assert AuditChainHead.objects.filter(seq__gt=0).count() == 0


def test_an_entry_rolls_back_with_the_act_that_wrote_it(merchant):
    # when the caller's transaction fails after the entry was written
    with pytest.raises(RuntimeError), transaction.atomic():
        record_audit(action="batch_paused", merchant_id=merchant.pk)
        raise RuntimeError("the act failed")
    # then neither the entry nor the head moved, and the next entry is #1
    assert AuditEntry.objects.count() == 0
    assert record_audit(action="batch_paused", merchant_id=merchant.pk).seq == 1
    assert verify()[0] == 0
