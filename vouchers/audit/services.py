"""Writing the audit log: one function every app calls, inside the act's own transaction.

    record_audit(action="code_revealed", merchant_id=..., user=request.user,
                 target=code, reason="customer says the code does not work", details={...})

The entry is written in the caller's transaction (a savepoint if one is open), so the
act and its audit row commit or roll back together. Appending locks the chain's head
row until that transaction ends: appends to one merchant's chain queue behind each
other, other merchants' do not. Staff acts are rare, so the queue is short; callers
append as the last step of their transaction to hold the lock briefly and always in
the same order (their own rows first, the chain head last), which avoids deadlocks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vouchers.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry

MAX_REASON_LENGTH = 500
# Never written into an entry, whatever a caller passes: an audit row holds no secret.
FORBIDDEN_DETAIL_KEYS = frozenset({"code", "plaintext", "key", "api_key", "password", "secret"})


class AuditReasonRequired(ValueError):
    """The act needs a reason and none was given."""


def chain_for(merchant_id: int | None) -> str:
    return f"merchant:{merchant_id}" if merchant_id is not None else "global"


def chain_key() -> bytes:
    """The HMAC key of the chain: AUDIT_CHAIN_KEY, else derived from SECRET_KEY.

    Keyed so that someone who can write the table but not read the settings cannot
    forge a consistent chain (a plain hash could be recomputed). Changing the key makes
    older entries fail verification: rotate it together with a note of the last hashes.
    """
    explicit = getattr(settings, "AUDIT_CHAIN_KEY", "")
    if explicit:
        return explicit.encode() if isinstance(explicit, str) else explicit
    return hmac.new(settings.SECRET_KEY.encode(), b"audit-chain-v1", hashlib.sha256).digest()


def normalised_details(details: dict | None) -> dict:
    """The details as they will read back from a JSON column (plain JSON types, sorted)."""
    clean = json.loads(json.dumps(details or {}, sort_keys=True, default=str))
    forbidden = FORBIDDEN_DETAIL_KEYS & set(clean)
    if forbidden:
        raise ValueError(f"audit details must not hold secrets: {sorted(forbidden)}")
    return clean


def entry_digest(entry: AuditEntry) -> str:
    """HMAC-SHA256 over the entry's fields (canonical JSON) and the previous entry's hash."""
    created = entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = {
        "chain": entry.chain, "seq": entry.seq, "merchant_id": entry.merchant_id,
        "action": entry.action, "actor": entry.actor, "actor_name": entry.actor_name,
        "user_id": entry.user_id, "target_type": entry.target_type, "target_id": entry.target_id,
        "target_label": entry.target_label, "reason": entry.reason, "details": entry.details,
        "created_at": created, "prev_hash": entry.prev_hash,
    }
    message = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(chain_key(), message, hashlib.sha256).hexdigest()


def _lock_head(chain: str) -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(chain=chain).first()
    if head is None:
        # First entry of this chain: create the head (ON CONFLICT DO NOTHING, so two first
        # appends at once both end up locking the one row) and lock it.
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(chain=chain, seq=0, hash=GENESIS_HASH)], ignore_conflicts=True
        )
        head = AuditChainHead.objects.select_for_update().get(chain=chain)
    return head


def record_audit(
    *,
    action: str,
    merchant_id: int | None,
    user=None,
    actor: str | None = None,
    target=None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    reason: str = "",
    reason_required: bool = False,
    details: dict | None = None,
) -> AuditEntry:
    """Append one entry to the merchant's chain, in the caller's transaction.

    `user` is the staff member who acted (None for the system; `actor` overrides the
    actor string, e.g. "partner:3"); `target` is the model instance acted on (or give
    target_type / target_id). Raises AuditReasonRequired when reason_required and the
    reason is blank, ValueError when details carry a secret's key name.
    """
    reason = (reason or "").strip()[:MAX_REASON_LENGTH]
    if reason_required and not reason:
        raise AuditReasonRequired("a reason is required")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_label = target_label or str(target)[:200]
    user_id = getattr(user, "pk", None)
    if actor is None:
        actor = f"user:{user_id}" if user_id else "system"
    chain = chain_for(merchant_id)
    with transaction.atomic():
        head = _lock_head(chain)
        entry = AuditEntry(
            chain=chain, seq=head.seq + 1, merchant_id=merchant_id, action=action, actor=actor,
            actor_name=getattr(user, "get_username", lambda: "")() if user_id else "",
            user_id=user_id, target_type=target_type, target_id=str(target_id),
            target_label=target_label[:200], reason=reason, details=normalised_details(details),
            created_at=timezone.now(), prev_hash=head.hash,
        )
        entry.hash = entry_digest(entry)
        entry.save(force_insert=True)
        AuditChainHead.objects.filter(pk=head.pk).update(seq=entry.seq, hash=entry.hash)
    return entry


# --- verification -----------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    chain: str
    seq: int | None
    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.chain} #{self.seq}" if self.seq is not None else self.chain
        entry = f" (entry id {self.entry_id})" if self.entry_id is not None else ""
        return f"{where}{entry}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    chain: str
    entries: int
    head_seq: int
    head_hash: str


def verify_chains(*, chunk_size: int = 2000) -> tuple[list[ChainReport], list[Finding]]:
    """Walk every chain in order and report what does not hold.

    Finds an entry changed (its HMAC does not match its fields), deleted (a gap in the
    numbers, or the next entry's prev_hash does not match, or the head names a later
    entry than the last one found), or inserted (a number the head does not know, or
    a forged entry whose HMAC cannot be computed without the key).
    """
    findings: list[Finding] = []
    reports: list[ChainReport] = []
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(AuditEntry.objects.values_list("chain", flat=True).distinct())
    for chain in sorted(chains):
        expected_seq, prev_hash, count, seen = 1, GENESIS_HASH, 0, 0
        while True:
            rows = list(AuditEntry.objects.filter(chain=chain, seq__gt=seen).order_by("seq")[:chunk_size])
            if not rows:
                break
            for entry in rows:
                count += 1
                if entry.seq != expected_seq:
                    findings.append(Finding(chain, expected_seq, None,
                                            f"entries #{expected_seq} to #{entry.seq - 1} are missing"))
                if entry.prev_hash != prev_hash:
                    findings.append(Finding(chain, entry.seq, entry.pk,
                                            "does not follow the entry before it (deleted or inserted)"))
                if not hmac.compare_digest(entry_digest(entry), entry.hash):
                    findings.append(Finding(chain, entry.seq, entry.pk,
                                            "its fields do not match its hash (changed or forged)"))
                expected_seq, prev_hash, seen = entry.seq + 1, entry.hash, entry.seq
        head = heads.get(chain)
        last_seq = expected_seq - 1
        if head is None:
            findings.append(Finding(chain, None, None, "has entries but no head (inserted)"))
        elif head.seq != last_seq or (count and head.hash != prev_hash):
            if head.seq > last_seq:
                problem = (f"the last entries are missing: the head is at #{head.seq}, "
                           f"the log ends at #{last_seq}")
            elif head.seq < last_seq:
                problem = (f"entries after #{head.seq} were added behind the log's back "
                           f"(the log ends at #{last_seq})")
            else:
                problem = "the head's hash does not match the last entry"
            findings.append(Finding(chain, None, None, problem))
        reports.append(ChainReport(chain, count, head.seq if head else 0, head.hash if head else ""))
    return reports, findings
