"""The admin's "Import codes" page: a supplier's file in, a batch or a per-row report out."""

from __future__ import annotations

import io

from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook

from tests.factories import ProductFactory
from vouchers import crypto
from vouchers.codeformat import CodeFormat
from vouchers.models import Batch, Code, CodeEvent
from vouchers.selectors import counted_stock_by_state, stock_by_state

IMPORT = "admin:vouchers_batch_import"


def fresh_codes(n: int) -> list[str]:
    """Random strong codes made at test time (no code is committed)."""
    fmt = CodeFormat(length=16, group=4)
    return [fmt.display(fmt.random_body()) for _ in range(n)]


def upload(name: str, lines: list[str], encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(encoding), content_type="text/csv")


def form_data(product, file, **overrides) -> dict:
    data = {
        "product": product.pk, "file": file, "encoding": "", "file_format": "", "reference": "",
        "valid_from_0": "", "valid_from_1": "", "valid_until_0": "", "valid_until_1": "",
    }
    return {**data, **overrides}


def stored() -> tuple[int, int, int]:
    return Batch.objects.count(), Code.objects.count(), CodeEvent.objects.count()


def plaintexts(batch) -> list[str]:
    return [crypto.decrypt_code(c) for c in Code.objects.filter(batch=batch).order_by("pk")]


def test_a_clean_csv_becomes_a_batch_and_opens_it(staff_client, staff, product):
    # given
    codes = fresh_codes(3)
    file = upload("supplier.csv", ["code,serial", f"{codes[0]},SN-1", f"{codes[1]},SN-2", f"{codes[2]},"])
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, file))
    # then
    batch = Batch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:vouchers_batch_change", args=[batch.pk])
    assert (batch.product_id, batch.source, batch.size, batch.reference, batch.created_by_id) == (
        product.pk, Batch.Source.IMPORTED, 3, "supplier.csv", staff.pk,
    )
    assert plaintexts(batch) == codes
    assert list(Code.objects.filter(batch=batch).order_by("pk").values_list("serial", flat=True)) == [
        "SN-1", "SN-2", None,
    ]
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == {
        "available": 3, "reserved": 0, "issued": 0, "redeemed": 0, "void": 0,
    }
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert shown == [f"Imported 3 codes into batch {batch.pk}."]


def test_a_large_upload_streamed_to_disk_is_imported(staff_client, product, settings):
    # given uploads bigger than a few bytes go to a temporary file, as big ones do in production
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 16
    codes = fresh_codes(50)
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, upload("big.txt", codes)))
    # then
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert batch.size == 50
    assert plaintexts(batch) == codes


def test_an_xlsx_file_is_read_by_its_extension(staff_client, product):
    # given
    codes = fresh_codes(2)
    book = Workbook()
    sheet = book.active
    sheet.append(["code", "serial"])
    for i, code in enumerate(codes):
        sheet.append([code, f"S{i}"])
    buffer = io.BytesIO()
    book.save(buffer)
    file = SimpleUploadedFile("cards.xlsx", buffer.getvalue())
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, file))
    # then
    assert response.status_code == 302
    assert plaintexts(Batch.objects.get()) == codes


def test_a_gb18030_file_with_chinese_serials_is_read(staff_client, product):
    # given
    codes = fresh_codes(2)
    file = upload("gbk.csv", ["code,serial", f"{codes[0]},礼品卡一", f"{codes[1]},礼品卡二"], "gb18030")
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, file, encoding="gb18030"))
    # then
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert list(Code.objects.filter(batch=batch).order_by("pk").values_list("serial", flat=True)) == [
        "礼品卡一", "礼品卡二",
    ]


def test_a_file_with_bad_rows_is_rejected_with_a_report_and_nothing_is_stored(staff_client, product):
    # given
    codes = fresh_codes(3)
    file = upload("bad.csv", [codes[0], "ab", codes[1], codes[0], codes[2]])
    before = stored()
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, file))
    # then
    assert response.status_code == 200
    rejection = response.context["rejection"]
    assert rejection["bad_rows"] == 2
    assert rejection["rows"] == [(2, "a code has at least 4 characters"), (4, "duplicate of line 1")]
    assert rejection["more"] == 0
    html = response.content.decode()
    assert "<tr><td>2</td><td>a code has at least 4 characters</td></tr>" in html
    assert "<tr><td>4</td><td>duplicate of line 1</td></tr>" in html
    assert "The file was rejected: 2 bad rows. Nothing was stored." in html
    assert not any(code in html for code in codes)
    assert stored() == before


def test_a_long_report_shows_the_first_hundred_rows_and_the_total(staff_client, product):
    # given 150 bad rows
    file = upload("bad.txt", ["abc"] * 150)
    before = stored()
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, file))
    # then
    assert response.status_code == 200
    rejection = response.context["rejection"]
    assert (len(rejection["rows"]), rejection["bad_rows"], rejection["more"]) == (100, 150, 50)
    assert rejection["rows"][-1] == (100, "a code has at least 4 characters")
    assert "… and 50 more rows not shown." in response.content.decode()
    assert stored() == before


def test_skip_invalid_keeps_the_valid_rows_and_shows_what_was_skipped(staff_client, product):
    # given
    codes = fresh_codes(2)
    file = upload("mixed.txt", [codes[0], "ab", codes[1]])
    # when
    response = staff_client.post(reverse(IMPORT), form_data(product, file, skip_invalid="on"))
    # then
    assert response.status_code == 200
    batch = Batch.objects.get()
    assert plaintexts(batch) == codes
    assert response.context["skipped"] == 1
    assert response.context["rows"] == [(2, "a code has at least 4 characters")]
    assert f"Imported 2 codes into batch {batch.pk}." in response.content.decode()


def test_weak_codes_are_a_form_error_unless_allowed(staff_client, product):
    # given 12-digit numeric codes: too guessable for their number
    weak = ["123456789012", "223456789012", "323456789012"]
    before = stored()
    # when
    refused = staff_client.post(reverse(IMPORT), form_data(product, upload("weak.txt", weak)))
    after_refusal = stored()
    allowed = staff_client.post(
        reverse(IMPORT), form_data(product, upload("weak.txt", weak), allow_weak_codes="on")
    )
    # then
    assert refused.status_code == 200
    errors = refused.context["form"].non_field_errors()
    assert len(errors) == 1 and "about 10^12.0 for 3 codes" in errors[0]
    assert after_refusal == before
    assert allowed.status_code == 302
    assert Batch.objects.get().size == 3


def test_a_bad_validity_window_is_a_form_error(staff_client, product):
    # given
    before = stored()
    data = form_data(
        product, upload("x.txt", fresh_codes(1)), valid_from_0="2031-01-02", valid_from_1="00:00",
        valid_until_0="2031-01-01", valid_until_1="00:00",
    )
    # when
    response = staff_client.post(reverse(IMPORT), data)
    # then
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors == {"valid_until": ["The validity window must end after it starts."]}
    assert stored() == before


def test_a_file_is_required(staff_client, product):
    # when
    response = staff_client.post(reverse(IMPORT), {"product": product.pk})
    # then
    assert response.status_code == 200
    assert response.context["form"].errors["file"] == ["This field is required."]
    assert Batch.objects.count() == 0


def test_codes_cannot_be_imported_for_another_merchants_product(staff_client):
    # given
    other = ProductFactory()
    before = stored()
    # when
    response = staff_client.post(reverse(IMPORT), form_data(other, upload("x.txt", fresh_codes(2))))
    # then
    assert response.status_code == 200
    assert response.context["form"].errors["product"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert stored() == before


def test_the_import_page_renders_for_staff(staff_client, product):
    # when
    response = staff_client.get(reverse(IMPORT))
    # then
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.content.decode()
    assert list(response.context["form"].fields["product"].queryset) == [product]
