"""Revealing one code's plaintext to a staff member, audited.

The plaintext leaves the service only to the storefront that issued it and to staff
holding the `vouchers.reveal_code` permission (invariant 3 of docs/invariants.md). A reveal needs
a reason; it writes a `revealed` code event and an audit entry (who, which code, why)
in the same transaction as the decryption, so a reveal that was shown was recorded.
The plaintext is returned to the caller only: it is never logged, stored or put in
the event or the audit entry (they name the code by id and last 4 characters).
Rate limiting per user is the admin view's job (a request-level concern).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from config.errors import DomainError, NotFound
from vouchers import crypto
from vouchers.audit.services import record_audit
from vouchers.models import Code
from vouchers.services.events import actor_for_user, record_event

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500


class RevealReasonRequired(DomainError):
    """400 `reason_required`: A reason is required to reveal a code."""


class RevealNotAllowed(DomainError):
    """403 `permission_denied`: revealing codes needs the reveal permission."""


@sensitive_variables("plaintext")
@transaction.atomic(durable=True)
def reveal_code(*, code_id: int, user, merchant_id: int | None, reason: str) -> tuple[Code, str]:
    """Decrypt one code for `user`, recording who asked and why; returns (code, plaintext).

    `merchant_id` scopes the lookup to the staff member's merchant (None: a superuser,
    any merchant); another merchant's code is NotFound, like a missing one. The code
    event and the audit entry are written before the plaintext is returned, in this
    transaction: if either write fails, nothing is revealed.
    Raises RevealNotAllowed, RevealReasonRequired, NotFound (and the crypto errors of a
    code under a missing key, loudly).
    """
    if user is None or not user.has_perm("vouchers.reveal_code"):
        raise RevealNotAllowed(_("You do not have the permission to reveal codes."))
    reason = (reason or "").strip()[:MAX_REASON_LENGTH]
    if not reason:
        raise RevealReasonRequired(_("Say why the code must be revealed."))
    queryset = Code.objects.select_related("batch__product")
    if merchant_id is not None:
        queryset = queryset.filter(batch__product__merchant_id=merchant_id)
    code = queryset.filter(pk=code_id).first()
    if code is None:
        raise NotFound(_("No such code."))
    plaintext = crypto.decrypt_code(code)
    actor = actor_for_user(user)
    record_event(action="revealed", actor=actor, code=code, details={"reason": reason})
    record_audit(
        action="code_revealed", merchant_id=code.batch.product.merchant_id, user=user, target=code,
        reason=reason,
        details={"code_id": code.pk, "last4": code.last4, "batch_id": code.batch_id, "state": code.state},
    )
    logger.info("code %s revealed by %s", code.pk, actor)
    return code, plaintext
