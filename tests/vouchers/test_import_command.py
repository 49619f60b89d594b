"""manage.py import_codes: options, summary, per-row report and exit status."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from tests.factories import MerchantFactory, ProductFactory, UserFactory
from tests.vouchers.test_import_support import fresh_codes, snapshot, stored_plaintexts, write_lines
from vouchers.models import Batch, CodeEvent

pytestmark = pytest.mark.django_db


def command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_codes", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_prints_a_summary_and_draws_a_progress_bar(product, tmp_path, capsys):
    # given
    codes = fresh_codes(3)
    path = write_lines(tmp_path / "codes.csv", ["code", *codes])
    # when
    out, err = command("--product", product.sku, path)
    # then
    batch = Batch.objects.get()
    assert out == (
        f"Imported 3 codes into batch {batch.pk} of {product.sku} ({product.merchant.slug}); skipped 0.\n"
    )
    assert err == ""
    bar = capsys.readouterr().err  # tqdm writes to the process's stderr
    assert "100%" in bar
    assert "| 3/3 [" in bar  # the 3 data rows, not the header line
    assert " rows/s]" in bar
    assert "4/4" not in bar
    assert f"Importing codes.csv into {product.sku}" in bar
    assert stored_plaintexts(batch) == codes


def test_options_reach_the_service(product, tmp_path):
    # given
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "codes.data", [codes[0], codes[1].lower()])
    user = UserFactory(username="ops")
    # when
    command(
        "--product", product.sku, "--merchant", product.merchant.slug, "--format", "txt",
        "--encoding", "gb18030", "--case-sensitive", "--valid-from", "2030-01-01",
        "--valid-until", "2031-06-30T18:00:00+08:00", "--reference", "PO-9", "--user", "ops",
        "--no-progress", path,
    )
    # then
    batch = Batch.objects.get()
    assert (batch.reference, batch.case_sensitive, batch.created_by) == ("PO-9", True, user)
    assert batch.valid_from == datetime(2030, 1, 1, tzinfo=UTC)
    assert batch.valid_until == datetime(2031, 6, 30, 10, 0, tzinfo=UTC)
    event = CodeEvent.objects.get()
    assert (event.actor, event.details["encoding"], event.details["file_format"]) == (
        f"user:{user.pk}", "gb18030", "txt"
    )


def test_a_rejected_file_prints_the_report_and_fails(product, tmp_path):
    # given three bad rows, two of them shown
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "codes.csv", [codes[0], "abc", codes[0], codes[1], "xy"])
    before = snapshot()
    err = io.StringIO()
    # when
    with pytest.raises(CommandError) as caught:
        call_command("import_codes", "--product", product.sku, "--no-progress", "--report-lines", "2",
                     path, stdout=io.StringIO(), stderr=err)
    # then
    assert str(caught.value) == "3 bad rows in the file. Nothing was imported."
    assert err.getvalue() == (
        "  line 2: a code has at least 4 characters\n"
        "  line 3: duplicate of line 1\n"
        "  ... and 1 more bad rows (3 in all).\n"
    )
    assert snapshot() == before


def test_skip_invalid_prints_the_skipped_rows(product, tmp_path):
    # given
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "codes.csv", [codes[0], "abc", codes[1]])
    # when
    out, err = command("--product", product.sku, "--skip-invalid", "--no-progress", path)
    # then
    batch = Batch.objects.get()
    assert out == (
        f"Imported 2 codes into batch {batch.pk} of {product.sku} ({product.merchant.slug}); skipped 1.\n"
    )
    assert err == "Skipped 1 bad rows (--skip-invalid):\n  line 2: a code has at least 4 characters\n"


def test_weak_codes_fail_without_the_override_and_pass_with_it(product, tmp_path):
    # given
    path = write_lines(tmp_path / "weak.txt", ["1234567890", "2234567890"])
    before = snapshot()
    # when
    with pytest.raises(CommandError) as caught:
        command("--product", product.sku, "--no-progress", path)
    # then
    assert "--allow-weak-codes" in str(caught.value)
    assert snapshot() == before
    # and with the override
    command("--product", product.sku, "--no-progress", "--allow-weak-codes", path)
    assert CodeEvent.objects.get().details["weak_codes_override"] is True


def test_an_unreadable_file_is_reported_as_a_whole(product, tmp_path):
    # given
    path = write_lines(tmp_path / "codes.xlsx", ["not a workbook"])
    before = snapshot()
    err = io.StringIO()
    # when
    with pytest.raises(CommandError) as caught:
        call_command("import_codes", "--product", product.sku, "--no-progress", path,
                     stdout=io.StringIO(), stderr=err)
    # then
    assert str(caught.value) == (
        "The file cannot be read: not a readable XLSX workbook (BadZipFile). Nothing was imported."
    )
    assert err.getvalue() == "  file: not a readable XLSX workbook (BadZipFile)\n"
    assert snapshot() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--product", "NOPE"], "No product with SKU 'NOPE'."),
        (["--product", "SHARED"], "Several merchants sell SKU 'SHARED'; name one with --merchant."),
        (["--product", "SHARED", "--merchant", "nobody"],
         "No product with SKU 'SHARED' for merchant 'nobody'."),
        (["--product", "SHARED", "--merchant", "m-one", "--user", "ghost"], "No user 'ghost'."),
        (["--product", "SHARED", "--merchant", "m-one", "--valid-from", "soon"],
         "--valid-from is not an ISO 8601 date or datetime."),
        (["--product", "SHARED", "--merchant", "m-one", "--encoding", "utf-16"],
         "encoding 'utf-16' is not ASCII-compatible (UTF-16 and UTF-32 are not supported)"),
    ],
)
def test_bad_options_fail_and_change_nothing(tmp_path, args, message):
    # given the same SKU at two merchants
    ProductFactory(sku="SHARED", merchant=MerchantFactory(slug="m-one"))
    ProductFactory(sku="SHARED", merchant=MerchantFactory(slug="m-two"))
    path = write_lines(tmp_path / "codes.txt", fresh_codes(1))
    before = snapshot()
    # when
    with pytest.raises(CommandError) as caught:
        command(*args, "--no-progress", path)
    # then
    assert str(caught.value) == message
    assert snapshot() == before


def test_the_merchant_option_picks_the_product(tmp_path):
    # given
    ProductFactory(sku="SHARED", merchant=MerchantFactory(slug="m-one"))
    mine = ProductFactory(sku="SHARED", merchant=MerchantFactory(slug="m-two"))
    path = write_lines(tmp_path / "codes.txt", fresh_codes(1))
    # when
    command("--product", "SHARED", "--merchant", "m-two", "--no-progress", path)
    # then
    assert Batch.objects.get().product == mine


def test_a_missing_file_fails(product, tmp_path):
    # given
    before = snapshot()
    # when
    with pytest.raises(CommandError) as caught:
        command("--product", product.sku, "--no-progress", str(tmp_path / "nowhere.csv"))
    # then
    assert str(caught.value) == f"No such file: {tmp_path / 'nowhere.csv'}"
    assert snapshot() == before
