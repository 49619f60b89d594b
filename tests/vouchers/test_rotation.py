"""Key rotation: everything ends under the primary key, plaintexts unchanged, resumable, loud."""

from __future__ import annotations

import secrets
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from vouchers import crypto
from vouchers.crypto import UnknownKeyId
from vouchers.models import Code, CodeEvent
from vouchers.services.generation import generate_batch
from vouchers.services.key_rotation import pending_by_key, rotate_keys

KEYS = {"old1": secrets.token_bytes(32), "old2": secrets.token_bytes(32), "new": secrets.token_bytes(32)}


def snapshot() -> dict[int, tuple[str, str, str | None]]:
    """pk -> (plaintext, state, issuance) of every code."""
    return {
        c.pk: (crypto.decrypt_code(c), c.state, c.issuance_id)
        for c in Code.objects.order_by("pk")
    }


def key_ids() -> dict[int, str]:
    return dict(Code.objects.values_list("pk", "key_id"))


@pytest.fixture
def codes_under_two_old_keys(settings, product):
    """7 codes under old1 and 5 under old2; then 'new' becomes primary with all three in the ring."""
    settings.VOUCHER_ENCRYPTION_KEYS = dict(KEYS)
    settings.VOUCHER_PRIMARY_KEY_ID = "old1"
    generate_batch(product=product, count=7)
    settings.VOUCHER_PRIMARY_KEY_ID = "old2"
    generate_batch(product=product, count=5)
    settings.VOUCHER_PRIMARY_KEY_ID = "new"
    return product


def test_rotation_moves_every_code_under_the_primary_key_with_plaintexts_unchanged(codes_under_two_old_keys):
    # given
    before = snapshot()
    assert pending_by_key() == {"old1": 7, "old2": 5}
    ciphertexts_before = dict(Code.objects.values_list("pk", "ciphertext"))
    # when
    report = rotate_keys(chunk_size=5)
    # then
    assert report.rotated_by_key == {"old1": 7, "old2": 5}
    assert report.rotated == 12
    assert report.chunks == 3
    assert report.remaining == 0
    assert set(key_ids().values()) == {"new"}
    assert pending_by_key() == {}
    assert snapshot() == before
    ciphertexts_after = dict(Code.objects.values_list("pk", "ciphertext"))
    assert all(bytes(ciphertexts_after[pk]) != bytes(ciphertexts_before[pk]) for pk in before)
    events = CodeEvent.objects.filter(action="codes_reencrypted").order_by("id")
    assert [e.details["from_key_ids"] for e in events] == [{"old1": 5}, {"old1": 2, "old2": 3}, {"old2": 2}]


def test_after_rotation_the_old_keys_can_be_removed_from_the_ring(settings, codes_under_two_old_keys):
    # given a finished rotation
    before = snapshot()
    rotate_keys()
    # when the ring keeps only the new key
    settings.VOUCHER_ENCRYPTION_KEYS = {"new": KEYS["new"]}
    # then every code still opens
    assert snapshot() == before


def test_an_interrupted_rotation_resumes_where_it_stopped(codes_under_two_old_keys):
    # given a run that stops after two chunks of 3
    before = snapshot()
    first = rotate_keys(chunk_size=3, max_chunks=2)
    assert first.rotated == 6
    assert first.remaining == 6
    assert list(key_ids().values()).count("new") == 6
    # when it runs again
    second = rotate_keys(chunk_size=3)
    # then it only does the rest
    assert second.rotated == 6
    assert second.remaining == 0
    assert set(key_ids().values()) == {"new"}
    assert snapshot() == before


def test_rotation_starting_after_an_id_leaves_earlier_codes_alone(codes_under_two_old_keys):
    pks = sorted(key_ids())
    report = rotate_keys(after_id=pks[3])
    ids = key_ids()
    assert report.rotated == 8
    assert [ids[pk] for pk in pks[:4]] == ["old1"] * 4
    assert {ids[pk] for pk in pks[4:]} == {"new"}


def test_running_rotation_again_when_done_changes_nothing(codes_under_two_old_keys):
    rotate_keys()
    ciphertexts = dict(Code.objects.values_list("pk", "ciphertext"))
    events = CodeEvent.objects.count()
    report = rotate_keys()
    assert report.rotated == 0
    assert report.chunks == 0
    assert dict(Code.objects.values_list("pk", "ciphertext")) == ciphertexts
    assert CodeEvent.objects.count() == events


def test_a_code_under_a_key_missing_from_the_ring_fails_loudly_and_nothing_is_rotated(
    settings, codes_under_two_old_keys
):
    # given old2 has been dropped from the ring too early
    settings.VOUCHER_ENCRYPTION_KEYS = {"old1": KEYS["old1"], "new": KEYS["new"]}
    ids_before = key_ids()
    # when / then
    with pytest.raises(UnknownKeyId, match=r"'old2' \(5 codes\)"):
        rotate_keys()
    assert key_ids() == ids_before
    assert not CodeEvent.objects.filter(action="codes_reencrypted").exists()


def test_the_command_names_the_unknown_key_id_and_rotates_nothing(settings, codes_under_two_old_keys):
    settings.VOUCHER_ENCRYPTION_KEYS = {"old2": KEYS["old2"], "new": KEYS["new"]}
    ids_before = key_ids()
    with pytest.raises(CommandError, match="'old1'"):
        call_command("rotate_keys", "--no-progress", stdout=StringIO(), stderr=StringIO())
    assert key_ids() == ids_before


def test_an_unknown_key_id_met_mid_run_stops_the_run_loudly(codes_under_two_old_keys, monkeypatch):
    # given a row whose key id disappears from the ring after the pre-flight check
    from vouchers.services import key_rotation

    monkeypatch.setattr(key_rotation, "ensure_keys_known", lambda pending: None)
    last = Code.objects.order_by("-pk").first()
    Code.objects.filter(pk=last.pk).update(key_id="ghost")
    # when / then the chunk holding it fails; earlier chunks stay rotated, it stays as it was
    with pytest.raises(UnknownKeyId, match="'ghost'"):
        rotate_keys(chunk_size=4)
    ids = key_ids()
    assert list(ids.values()).count("new") == 8
    assert ids[last.pk] == "ghost"


def test_the_command_dry_run_reports_counts_per_key_and_changes_nothing(codes_under_two_old_keys):
    ids_before = key_ids()
    out = StringIO()
    call_command("rotate_keys", "--dry-run", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "Primary key id: new" in text
    assert "7 codes under key id 'old1'" in text
    assert "5 codes under key id 'old2'" in text
    assert "Dry run: 12 codes would be re-encrypted under 'new'." in text
    assert key_ids() == ids_before


def test_the_command_rotates_and_reports(codes_under_two_old_keys):
    before = snapshot()
    out = StringIO()
    call_command("rotate_keys", "--chunk-size", "4", "--no-progress", stdout=out, stderr=StringIO())
    assert "Re-encrypted 12 codes under 'new' in 3 chunk(s)" in out.getvalue()
    assert "Done: every code is under 'new'" in out.getvalue()
    assert snapshot() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_code_locked_by_live_traffic_is_skipped_then_rotated_on_the_next_run(settings, product):
    # given codes under an old key, one of them locked by a concurrent transaction
    settings.VOUCHER_ENCRYPTION_KEYS = dict(KEYS)
    settings.VOUCHER_PRIMARY_KEY_ID = "old1"
    generate_batch(product=product, count=6)
    settings.VOUCHER_PRIMARY_KEY_ID = "new"
    before = snapshot()
    locked_pk = sorted(before)[2]
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                list(Code.objects.select_for_update().filter(pk=locked_pk))
                # a concurrent state change on the locked row (void it)
                Code.objects.filter(pk=locked_pk).update(state=Code.State.VOID)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()
            done.set()

    worker = threading.Thread(target=hold_lock)
    worker.start()
    try:
        assert locked.wait(timeout=30)
        # when rotation runs while the lock is held
        first = rotate_keys(chunk_size=2)
    finally:
        release.set()
        worker.join(timeout=30)
    assert done.is_set()
    # then the locked row was skipped, not waited on, and the concurrent change survived
    assert first.rotated == 5
    assert first.remaining == 1
    assert key_ids()[locked_pk] == "old1"
    # when it runs again
    second = rotate_keys(chunk_size=2)
    # then
    assert second.rotated == 1
    assert set(key_ids().values()) == {"new"}
    after = snapshot()
    assert after[locked_pk] == (before[locked_pk][0], Code.State.VOID, None)
    assert {pk: v for pk, v in after.items() if pk != locked_pk} == {
        pk: v for pk, v in before.items() if pk != locked_pk
    }

