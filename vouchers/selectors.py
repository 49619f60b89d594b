"""Reads used by more than one caller: stock figures and code lookups."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from vouchers import codeformat, crypto
from vouchers.models import Batch, Code, Product, StockCounter, Storefront


def stock_by_state(batch_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{batch_id: {state: count}} with every state present, from the sharded counters."""
    batch_ids = list(batch_ids)
    result: dict[int, dict[str, int]] = {
        batch_id: dict.fromkeys(Code.State.values, 0) for batch_id in batch_ids
    }
    rows = (
        StockCounter.objects.filter(batch_id__in=batch_ids)
        .values("batch_id", "state").annotate(total=Sum("count"))
    )
    for row in rows:
        result[row["batch_id"]][row["state"]] = row["total"]
    return result


def sellable_batches_q(now=None) -> Q:
    """Batches whose codes may be sold now: active and inside their validity window."""
    now = now or timezone.now()
    return (
        Q(status=Batch.Status.ACTIVE)
        & (Q(valid_from__isnull=True) | Q(valid_from__lte=now))
        & (Q(valid_until__isnull=True) | Q(valid_until__gt=now))
    )


def available_by_product(product_ids: Iterable[int], *, now=None) -> dict[int, int]:
    """Codes in stock now per product, over its sellable batches."""
    product_ids = list(product_ids)
    result = dict.fromkeys(product_ids, 0)
    rows = (
        StockCounter.objects.filter(
            state=Code.State.AVAILABLE, batch__product_id__in=product_ids
        )
        .filter(batch__in=Batch.objects.filter(sellable_batches_q(now)))
        .values("batch__product_id").annotate(total=Sum("count"))
    )
    for row in rows:
        result[row["batch__product_id"]] = row["total"]
    return result


def storefront_may_sell(*, storefront_id: int, product_id: int) -> bool:
    """A storefront with no product list sells all its merchant's products; else only those listed."""
    listed = Storefront.products.through.objects.filter(storefront_id=storefront_id)
    return not listed.exists() or listed.filter(product_id=product_id).exists()


def sellable_products(*, merchant_id: int, storefront_id: int):
    """Active products of the merchant that the storefront may sell, ordered by SKU."""
    products = Product.objects.filter(merchant_id=merchant_id, is_active=True).order_by("sku", "pk")
    listed = Storefront.products.through.objects.filter(storefront_id=storefront_id)
    if listed.exists():
        products = products.filter(pk__in=listed.values("product_id"))
    return products


def counted_stock_by_state(batch_id: int) -> dict[str, int]:
    """Stock by state counted from the codes themselves (the slow truth, for reconciling).

    Canaries are not stock: they stay outside the batch's size and counters.
    """
    result = dict.fromkeys(Code.State.values, 0)
    rows = Code.objects.filter(batch_id=batch_id, is_canary=False).values("state").annotate(n=Count("id"))
    for row in rows:
        result[row["state"]] = row["n"]
    return result


def find_code(raw: str, *, select_related: tuple[str, ...] = ("batch__product",)) -> Code | None:
    """Find a code by what a customer typed, through the blind index; None if unknown."""
    forms = codeformat.lookup_forms(raw)
    if not forms:
        return None
    indexes = [crypto.blind_index(form) for form in forms]
    candidates: Iterable[Code]
    if select_related == ("batch__product",):
        candidates = _codes_with_batch_and_product(indexes)
    else:
        candidates = Code.objects.select_related(*select_related).filter(blind_index__in=indexes)
    for code in candidates:
        # A case-insensitive batch matches only the folded form, a case-sensitive one only
        # the exact form: the batch decides which spelling is its own.
        expected = codeformat.normalise(raw, case_sensitive=code.batch.case_sensitive)
        if bytes(code.blind_index) == crypto.blind_index(expected):
            return code
    return None


class ModelRows:
    """One model's columns in a hand-written SELECT, turned into an instance as the ORM
    would (the backend's and the field's converters, then `from_db`)."""

    def __init__(self, model, alias: str) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.select = ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in self.fields)
        self._converters: dict[str, list] = {}

    def converters(self) -> list:
        vendor = connection.vendor
        if vendor not in self._converters:
            found = []
            for i, f in enumerate(self.fields):
                col = f.get_col(self.model._meta.db_table)
                funcs = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
                if funcs:
                    found.append((i, col, funcs))
            self._converters[vendor] = found
        return self._converters[vendor]

    def instance(self, values):
        values = list(values)
        for i, col, funcs in self.converters():
            for func in funcs:
                values[i] = func(values[i], col, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


_CODE_ROWS, _BATCH_ROWS, _PRODUCT_ROWS = ModelRows(Code, "c"), ModelRows(Batch, "b"), ModelRows(Product, "p")


def _codes_with_batch_and_product(indexes: list[bytes]) -> list[Code]:
    """Codes by blind index with their batch and product, as
    `Code.objects.select_related("batch__product").filter(blind_index__in=indexes)`
    returns them. Written as SQL because compiling that query costs more CPU than
    running it, on every check and redemption."""
    sql = (
        f"SELECT {_CODE_ROWS.select}, {_BATCH_ROWS.select}, {_PRODUCT_ROWS.select} "  # noqa: S608
        f"FROM {Code._meta.db_table} c JOIN {Batch._meta.db_table} b ON b.id = c.batch_id "
        f"JOIN {Product._meta.db_table} p ON p.id = b.product_id "
        f"WHERE c.blind_index IN ({', '.join(['%s'] * len(indexes))})"
    )
    n_code, n_batch = len(_CODE_ROWS.fields), len(_BATCH_ROWS.fields)
    codes = []
    with connection.cursor() as cursor:
        cursor.execute(sql, indexes)
        for row in cursor.fetchall():
            code = _CODE_ROWS.instance(row[:n_code])
            batch = _BATCH_ROWS.instance(row[n_code:n_code + n_batch])
            batch.product = _PRODUCT_ROWS.instance(row[n_code + n_batch:])
            code.batch = batch
            codes.append(code)
    return codes
