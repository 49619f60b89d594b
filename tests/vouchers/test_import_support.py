"""Shared helpers for the import tests (no tests here): codes generated at test time, files in tmp dirs."""

from __future__ import annotations

from dataclasses import dataclass

from vouchers import codeformat, crypto
from vouchers.codeformat import CodeFormat
from vouchers.models import Batch, Code, CodeEvent, StockCounter


def fresh_codes(n: int, fmt: CodeFormat | None = None) -> list[str]:
    """n distinct random codes in display form (grouped with hyphens), strong by default."""
    fmt = fmt or CodeFormat(group=4)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        code = fmt.display(fmt.random_body())
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


def write_lines(path, lines: list[str], *, encoding: str = "utf-8", bom: bool = False) -> str:
    data = "".join(f"{line}\n" for line in lines).encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return str(path)


@dataclass(frozen=True)
class Snapshot:
    batches: int
    codes: int
    counters: int
    events: int


def snapshot() -> Snapshot:
    return Snapshot(
        batches=Batch.objects.count(), codes=Code.objects.count(),
        counters=StockCounter.objects.count(), events=CodeEvent.objects.count(),
    )


def stored_plaintexts(batch: Batch) -> list[str]:
    """Decrypted codes of a batch in primary-key (file) order."""
    return [crypto.decrypt_code(c) for c in Code.objects.filter(batch=batch).order_by("pk")]


def blind(code: str, *, case_sensitive: bool = False) -> bytes:
    return crypto.blind_index(codeformat.normalise(code, case_sensitive=case_sensitive))


def available_stock(batch: Batch) -> int:
    return sum(
        StockCounter.objects.filter(batch=batch, state=Code.State.AVAILABLE).values_list("count", flat=True)
    )
