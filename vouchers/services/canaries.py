"""Canary codes: planted in a batch, never issued, any use of one means the batch leaked.

A merchant plants a few canaries and copies their plaintexts (shown once) into the
places the batch's codes live: the supplier's file, the spreadsheet, the back office.
Whoever later checks or redeems one has read those places; fraud.services.leaks
raises a critical alert naming the batch.

Canaries are stored like any code (encrypted, blind index) but `is_canary=True` and
`state="void"` from the start (a database constraint keeps them void), so they are
never claimable and never stock. They are outside the batch's accounting: not in
`batch.size`, not in its StockCounter shards. A batch's counts by state add up to
`batch.size` over its non-canary codes; a reconciliation counting rows must exclude
`is_canary=True`.
"""

from __future__ import annotations

import math
import secrets
import string
from collections import Counter
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from vouchers import codeformat, crypto
from vouchers.codeformat import CodeFormat
from vouchers.exceptions import InvalidBatchSettings
from vouchers.models import Batch, Code
from vouchers.services.code_writer import seal_code
from vouchers.services.events import actor_for_user, record_code_events

MAX_CANARIES_PER_CALL = 100
SAMPLE_SIZE = 20
# A canary's random part must not be guessable either: a guesser hitting one would
# raise a false leak alarm.
MIN_RANDOM_SPACE = 10**12
_FORMAT_FIELDS = ("length", "alphabet", "prefix", "group", "check_char")
_CLASSES = (string.digits, string.ascii_uppercase, string.ascii_lowercase)


@transaction.atomic
def plant_canaries(*, batch: Batch, count: int, actor_user) -> list[str]:
    """Plant `count` canary codes in `batch`; return their plaintexts, to be shown once.

    They look like the batch's codes: drawn from its generation format, or, for an
    imported batch, from a shape learnt from a sample of its codes (decrypted in memory
    only: fixed prefix and separators kept, every other position drawn from the
    character classes seen there). The plaintexts are not stored, logged or put in
    any event; only this return value carries them. One `canary_planted` event per code.
    Raises InvalidBatchSettings (count out of range, a void batch, nothing to imitate).
    """
    if not 1 <= count <= MAX_CANARIES_PER_CALL:
        raise InvalidBatchSettings(f"plant between 1 and {MAX_CANARIES_PER_CALL} canaries at a time")
    if batch.status == Batch.Status.VOID:
        raise InvalidBatchSettings("a void batch is not stocked anywhere; plant canaries in a live one")
    draw = _drawer_for(batch)
    now = timezone.now()
    for _attempt in range(3):
        chosen = _fresh_canaries(draw, count, case_sensitive=batch.case_sensitive)
        sealed = [
            seal_code(display=display, normalised=normalised, batch_id=batch.pk, blind_index=index)
            for index, (display, normalised) in chosen.items()
        ]
        try:
            with transaction.atomic():  # a concurrent writer taking one of ours redoes the draw
                Code.objects.bulk_create([
                    Code(
                        batch_id=batch.pk, ciphertext=row.ciphertext, nonce=row.nonce, key_id=row.key_id,
                        blind_index=row.blind_index, last4=row.last4, state=Code.State.VOID,
                        is_canary=True, state_changed_at=now,
                    )
                    for row in sealed
                ])
        except IntegrityError:
            continue
        break
    else:
        raise InvalidBatchSettings("could not draw distinct canary codes; try again")
    planted = list(Code.objects.filter(blind_index__in=list(chosen)).only("pk", "batch_id"))
    record_code_events(
        codes=planted, action="canary_planted", actor=actor_for_user(actor_user),
        from_state="", to_state=Code.State.VOID,
    )
    return [display for display, _normalised in chosen.values()]


def _fresh_canaries(
    draw: Callable[[], str], count: int, *, case_sensitive: bool
) -> dict[bytes, tuple[str, str]]:
    """{blind index: (display, normalised)} for `count` codes unseen in the batch and database."""
    chosen: dict[bytes, tuple[str, str]] = {}
    for _round in range(20):
        candidates: dict[bytes, tuple[str, str]] = {}
        for _ in range(count - len(chosen)):
            display = draw()
            normalised = codeformat.normalise(display, case_sensitive=case_sensitive)
            index = crypto.blind_index(normalised)
            if index not in chosen:
                candidates[index] = (display, normalised)
        taken = {
            bytes(b) for b in Code.objects.filter(blind_index__in=list(candidates))
            .values_list("blind_index", flat=True)
        }
        chosen.update((i, c) for i, c in candidates.items() if i not in taken)
        if len(chosen) >= count:
            return dict(list(chosen.items())[:count])
    raise InvalidBatchSettings("could not draw distinct canary codes; the code space is too small")


def _drawer_for(batch: Batch) -> Callable[[], str]:
    fmt = {k: batch.format[k] for k in _FORMAT_FIELDS if k in (batch.format or {})}
    if batch.source == Batch.Source.GENERATED and fmt:
        code_format = CodeFormat(**fmt)
        return lambda: code_format.display(code_format.random_body())
    return _learnt_drawer(batch)


def _learnt_drawer(batch: Batch) -> Callable[[], str]:
    """A drawer imitating the batch's codes, from a sample decrypted in memory only."""
    rows = Code.objects.filter(batch_id=batch.pk, is_canary=False).order_by("pk")[:SAMPLE_SIZE]
    samples = [crypto.decrypt_code(row) for row in rows]
    if not samples:
        raise InvalidBatchSettings("the batch has no codes to imitate; load its codes first")
    length = Counter(len(s) for s in samples).most_common(1)[0][0]
    samples = [s for s in samples if len(s) == length]
    pools = [_pool(s[i] for s in samples) for i in range(length)]
    prefix_len = _common_prefix_length(samples) if len(samples) >= 2 else 0
    # Keep the shared prefix (and fixed separators) literal while what stays random still
    # gives at least MIN_RANDOM_SPACE; otherwise draw those positions too.
    template: list[str] = []
    for i in range(length):
        chars = {s[i] for s in samples}
        fixed = len(chars) == 1 and (i < prefix_len or not samples[0][i].isalnum())
        rest = math.prod(len(p) for p in pools[i + 1 :] if len(p) > 1)
        random_so_far = math.prod(len(p) for p in template if len(p) > 1)
        if fixed and (not samples[0][i].isalnum() or random_so_far * rest >= MIN_RANDOM_SPACE):
            template.append(samples[0][i])
        else:
            template.append(pools[i])
    if math.prod(len(p) for p in template if len(p) > 1) < MIN_RANDOM_SPACE:
        raise InvalidBatchSettings("the batch's codes are too short to imitate safely")
    return lambda: "".join(p if len(p) == 1 else secrets.choice(p) for p in template)


def _pool(chars) -> str:
    """Every character of the classes (digits, upper, lower) the given characters belong to."""
    chars = set(chars)
    pool = "".join(cls for cls in _CLASSES if chars & set(cls))
    others = "".join(sorted(c for c in chars if not c.isalnum()))
    return pool + others if pool else others


def _common_prefix_length(samples: list[str]) -> int:
    n = 0
    for chars in zip(*samples, strict=False):
        if len(set(chars)) != 1:
            break
        n += 1
    return n
