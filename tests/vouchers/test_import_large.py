"""Large imports: 200,000 rows with memory bounded (Python allocations measured by tracemalloc)."""

from __future__ import annotations

import tracemalloc

import pytest

from tests.vouchers.test_import_support import available_stock, blind, fresh_codes, snapshot
from vouchers import crypto
from vouchers.exceptions import ImportRejected
from vouchers.models import Code
from vouchers.services.imports import import_codes

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ROWS = 200_000
# Holding the file's codes as Python strings alone would take ~14 MB (200,000 x ~70 bytes),
# their sealed rows several times that. The import streams, so its peak stays far below.
PEAK_BOUND_BYTES = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """A CSV of 200,000 distinct generated codes with a serial column, and the codes' lines."""
    codes = fresh_codes(ROWS)
    path = tmp_path_factory.mktemp("large") / "big.csv"
    with open(path, "w", encoding="utf-8") as out:
        out.write("code,serial\n")
        for index, code in enumerate(codes):
            out.write(f"{code},SN{index:07d}\n")
    return path, [codes[0], codes[ROWS // 2], codes[-1]]


def measure_peak(call):
    """(what `call` returned or raised, peak bytes allocated by Python while it ran)."""
    tracemalloc.start()
    try:
        try:
            outcome = call()
        except Exception as exc:  # the caller asserts what was raised
            outcome = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak Python allocation: {peak / 2**20:.2f} MiB")
    return outcome, peak


def test_a_200k_row_file_is_imported_with_memory_bounded(product, big_file):
    # given
    path, samples = big_file
    # when
    result, peak = measure_peak(lambda: import_codes(product=product, file=path, filename="big.csv"))
    # then
    assert (result.imported, result.skipped) == (ROWS, 0)
    assert Code.objects.filter(batch=result.batch).count() == ROWS
    assert available_stock(result.batch) == ROWS
    assert peak < PEAK_BOUND_BYTES, f"peak Python allocation {peak / 2**20:.1f} MiB"
    # and sampled codes are there, sealed, under their blind index
    for code in samples:
        row = Code.objects.get(blind_index=blind(code))
        assert crypto.decrypt_code(row) == code


def test_a_late_duplicate_in_a_100k_row_file_is_found_with_memory_bounded(product, big_file, tmp_path):
    # given the first 100,000 rows of the big file with its first code repeated on a last line
    # (half the big file: the checked pass reads the file twice and tracemalloc slows Python)
    path, samples = big_file
    half = ROWS // 2
    lines = path.read_bytes().splitlines(keepends=True)[: half + 1]
    bad = tmp_path / "half-dup.csv"
    bad.write_bytes(b"".join(lines) + f"{samples[0]},LAST\n".encode())
    before = snapshot()
    # when: the fast load hits the unique index, the checked pass finds the line
    outcome, peak = measure_peak(lambda: import_codes(product=product, file=bad, filename="half-dup.csv"))
    # then
    assert isinstance(outcome, ImportRejected)
    assert outcome.report == [(half + 2, "duplicate of line 2")]
    assert outcome.bad_rows == 1
    assert snapshot() == before
    assert peak < PEAK_BOUND_BYTES, f"peak Python allocation {peak / 2**20:.1f} MiB"
