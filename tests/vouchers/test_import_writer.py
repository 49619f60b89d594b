"""The import's writing side: the batch sealer, bulk writes, visibility and concurrent imports."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from tests.vouchers.test_import_support import blind, fresh_codes, snapshot, stored_plaintexts, write_lines
from vouchers import crypto
from vouchers.exceptions import ImportRejected
from vouchers.models import Batch, Code
from vouchers.services.code_writer import BatchSealer, display_tail
from vouchers.services.imports import import_codes


def test_the_batch_sealer_gives_the_same_blind_index_and_an_openable_ciphertext(db):
    # given
    sealer = BatchSealer(batch_id=42)
    codes = fresh_codes(3)
    # when
    sealed = [(code, sealer.blind_index(code.replace("-", "")), code) for code in codes]
    # then
    for code, index, display in sealed:
        assert index == crypto.blind_index(code.replace("-", ""))
        ciphertext, nonce = sealer.seal(display, index)
        assert len(nonce) == crypto.NONCE_BYTES
        assert crypto.open_sealed(
            ciphertext=ciphertext, nonce=nonce, key_id=sealer.key_id, batch_id=42, blind_index=index
        ) == display
        with pytest.raises(crypto.CodeIntegrityError):  # bound to its batch
            crypto.open_sealed(
                ciphertext=ciphertext, nonce=nonce, key_id=sealer.key_id, batch_id=43, blind_index=index
            )


def test_the_batch_sealer_never_reuses_a_nonce(db):
    # given
    sealer = BatchSealer(batch_id=1)
    index = crypto.blind_index("SAME")
    # when: more codes than one nonce pool holds
    nonces = {sealer.seal("SAME", index)[1] for _ in range(10_000)}
    # then
    assert len(nonces) == 10_000


@pytest.mark.parametrize(
    ("normalised", "tail"),
    [("ABCD", "D"), ("ABCDEFG", "G"), ("ABCDEFGH", "GH"), ("123456789012", "012"),
     ("ABCDEFGHJKMNPQRS", "PQRS"), ("A" * 64, "AAAA")],
)
def test_the_clear_tail_shows_at_most_a_quarter_of_a_short_code(normalised, tail):
    assert display_tail(normalised) == tail


@pytest.mark.django_db
def test_rows_are_written_in_bulk_not_one_query_per_row(product, tmp_path):
    # given
    path = write_lines(tmp_path / "codes.txt", fresh_codes(5_000))
    # when
    with CaptureQueriesContext(connection) as queries:
        result = import_codes(product=product, file=path, filename="codes.txt")
    # then: COPY on PostgreSQL (not even logged as a query), 2,000-row INSERTs elsewhere
    assert result.imported == 5_000
    assert len(queries) < 25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_batch_is_invisible_to_other_sessions_until_the_import_commits(product, tmp_path):
    # given a file long enough for a progress call in the middle of the load
    codes = fresh_codes(25_000)
    path = write_lines(tmp_path / "codes.txt", codes)
    seen_during: list[tuple[int, int]] = []

    def look_from_another_session(_lines: int) -> None:
        if seen_during:
            return

        def look() -> None:
            try:
                seen_during.append((Batch.objects.count(), Code.objects.count()))
            finally:
                connections.close_all()

        watcher = threading.Thread(target=look)
        watcher.start()
        watcher.join(timeout=30)

    # when
    result = import_codes(
        product=product, file=path, filename="codes.txt", progress=look_from_another_session
    )
    # then
    assert seen_during == [(0, 0)]
    assert (Batch.objects.count(), Code.objects.filter(batch=result.batch).count()) == (1, 25_000)


def import_at_once(product, tmp_path, a: list[str], b: list[str], **options) -> dict[str, object]:
    """Import two files, a.txt and b.txt, from two sessions released together.

    Returns each file's outcome by name ("a", "b"): its import result, or the error it raised.
    """
    files = {"a": write_lines(tmp_path / "a.txt", a), "b": write_lines(tmp_path / "b.txt", b)}
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            barrier.wait()
            outcomes[name] = import_codes(
                product=product, file=files[name], filename=f"{name}.txt", **options
            )
        except Exception as exc:  # recorded, asserted by the caller
            outcomes[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(name,)) for name in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_imports_of_overlapping_files_at_once_store_each_code_once(product, tmp_path):
    # given two files sharing 8,000 codes (in opposite orders: the loads may deadlock),
    # imported at the same moment from two sessions
    shared, only_a, only_b = fresh_codes(8_000), fresh_codes(500), fresh_codes(500)
    # when
    outcomes = import_at_once(product, tmp_path, shared + only_a, only_b + list(reversed(shared)))
    # then: one import stored its file, the other was refused for exactly the shared codes
    rejected = [o for o in outcomes.values() if isinstance(o, ImportRejected)]
    imported = [o for o in outcomes.values() if not isinstance(o, Exception)]
    assert (len(imported), len(rejected)) == (1, 1), outcomes
    assert rejected[0].bad_rows == 8_000
    assert {reason for _, reason in rejected[0].report} == {"already stored"}
    winner = imported[0]
    assert winner.imported == 8_500
    assert snapshot().batches == 1
    assert Code.objects.count() == 8_500
    expected = shared + (only_a if winner.batch.reference == "a.txt" else only_b)
    assert sorted(stored_plaintexts(winner.batch)) == sorted(expected)
    stored = {bytes(b) for b in Code.objects.values_list("blind_index", flat=True)}
    assert stored == {blind(c) for c in expected}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_imports_with_skip_invalid_both_commit_and_split_the_codes(product, tmp_path):
    # given two files sharing 8,000 codes in opposite orders, imported at once, keeping valid rows
    shared, only_a, only_b = fresh_codes(8_000), fresh_codes(300), fresh_codes(300)
    # when
    outcomes = import_at_once(
        product, tmp_path, shared + only_a, only_b + list(reversed(shared)), skip_invalid=True
    )
    # then: every code stored exactly once, the skipped ones reported as already stored
    results = list(outcomes.values())
    assert not [r for r in results if isinstance(r, Exception)], outcomes
    assert sum(r.imported for r in results) == 8_600
    assert sum(r.skipped for r in results) == 8_000
    assert Code.objects.count() == 8_600
    assert {bytes(b) for b in Code.objects.values_list("blind_index", flat=True)} == {
        blind(c) for c in shared + only_a + only_b
    }
    for r in results:
        assert Batch.objects.get(pk=r.batch.pk).size == r.imported
        assert {reason for _, reason in r.report} <= {"already stored"}


class _Deadlock(Exception):
    sqlstate = "40P01"


def _failing_once(error: Exception):
    from vouchers.services import imports

    real = imports.write_full_code_rows
    calls = []

    def write_full_code_rows(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(**kwargs)

    return write_full_code_rows


@pytest.mark.django_db
def test_a_deadlocked_fast_load_falls_back_to_the_checked_pass(product, tmp_path, monkeypatch):
    # given a fast load aborted by the database as a deadlock victim
    from django.db import OperationalError

    deadlock = OperationalError("deadlock detected")
    deadlock.__cause__ = _Deadlock()
    monkeypatch.setattr("vouchers.services.imports.write_full_code_rows", _failing_once(deadlock))
    codes = fresh_codes(3)
    # when
    result = import_codes(product=product, file=write_lines(tmp_path / "c.txt", codes), filename="c.txt")
    # then
    assert (result.imported, result.skipped) == (3, 0)
    assert stored_plaintexts(result.batch) == codes


@pytest.mark.django_db
def test_any_other_database_error_propagates_and_nothing_is_stored(product, tmp_path, monkeypatch):
    # given
    from django.db import OperationalError

    monkeypatch.setattr(
        "vouchers.services.imports.write_full_code_rows", _failing_once(OperationalError("server closed"))
    )
    before = snapshot()
    # when
    with pytest.raises(OperationalError):
        import_codes(product=product, file=write_lines(tmp_path / "c.txt", fresh_codes(3)), filename="c.txt")
    # then
    assert snapshot() == before
