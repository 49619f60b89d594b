"""Generating a batch of random codes for a product."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from vouchers import codeformat, crypto
from vouchers.codeformat import CodeFormat, TooGuessable
from vouchers.exceptions import InvalidBatchSettings
from vouchers.models import Batch, Code, Product
from vouchers.services.batches import finish_batch, start_batch
from vouchers.services.code_writer import seal_code, write_codes

MAX_GENERATED_PER_BATCH = 10_000_000
CHUNK = 5_000


@transaction.atomic
def generate_batch(
    *,
    product: Product,
    count: int,
    fmt: CodeFormat | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    created_by=None,
    reference: str = "",
    progress: Callable[[int], None] | None = None,
) -> Batch:
    """Generate `count` new random codes as one batch; all of them or none.

    A code that collides with any stored code (or another in the same run) is drawn
    again, never stored twice. Raises InvalidBatchSettings (count out of range, a
    malformed format, or a code space too small for the count).
    """
    if not 1 <= count <= MAX_GENERATED_PER_BATCH:
        raise InvalidBatchSettings(f"count must be between 1 and {MAX_GENERATED_PER_BATCH:,}")
    fmt = fmt or CodeFormat()
    try:
        codeformat.ensure_not_guessable(count=count, space=fmt.space, what="These settings")
    except TooGuessable as exc:
        raise InvalidBatchSettings(str(exc)) from None
    case_sensitive = fmt.case_sensitive_alphabet
    batch = start_batch(
        product=product, source=Batch.Source.GENERATED, case_sensitive=case_sensitive,
        valid_from=valid_from, valid_until=valid_until, created_by=created_by,
        reference=reference, fmt=fmt.as_json(),
    )
    now = timezone.now()
    written = redraws = 0
    while written < count:
        n = min(CHUNK, count - written)
        try:
            with transaction.atomic():  # savepoint: a concurrent writer's collision redoes the chunk
                chunk, chunk_redraws = _fresh_chunk(fmt, n, case_sensitive)
                written += write_codes(
                    batch_id=batch.pk,
                    rows=(
                        seal_code(display=d, normalised=c, batch_id=batch.pk, blind_index=i)
                        for d, c, i in chunk
                    ),
                    now=now,
                )
                redraws += chunk_redraws
        except IntegrityError:
            redraws += 1
            continue
        if progress:
            progress(n)
    return finish_batch(
        batch=batch, loaded=written, created_by=created_by,
        details={"format": fmt.as_json(), "redraws": redraws},
    )


def _fresh_chunk(
    fmt: CodeFormat, n: int, case_sensitive: bool
) -> tuple[list[tuple[str, str, bytes]], int]:
    """n (display, normalised, blind index) triples unseen in the chunk and in the database."""
    chosen: dict[bytes, tuple[str, str]] = {}
    redraws = 0
    while len(chosen) < n:
        missing = n - len(chosen)
        candidates: dict[bytes, tuple[str, str]] = {}
        for _ in range(missing):
            display = fmt.display(fmt.random_body())
            normalised = codeformat.normalise(display, case_sensitive=case_sensitive)
            index = crypto.blind_index(normalised)
            if index in chosen or index in candidates:
                redraws += 1
                continue
            candidates[index] = (display, normalised)
        taken = set(
            bytes(b) for b in Code.objects.filter(blind_index__in=list(candidates))
            .values_list("blind_index", flat=True)
        )
        redraws += len(taken)
        chosen.update((i, c) for i, c in candidates.items() if i not in taken)
    return [(d, c, i) for i, (d, c) in chosen.items()], redraws
