"""Periodic operations jobs."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.mail import mail_admins

from vouchers.ops.invariants import run_checks

logger = logging.getLogger("vouchers.ops.invariants")


@shared_task(acks_late=True)
def check_invariants_daily() -> int:
    """Run every invariant check; on a violation log an error and mail the operators (ADMINS).

    Read-only and safe to run twice. Returns the number of violations.
    """
    violations = run_checks()
    if violations:
        report = "\n".join(str(v) for v in violations)
        logger.error("invariant check: %s violation(s)\n%s", len(violations), report)
        mail_admins(f"Invariant check: {len(violations)} violation(s)",
                    f"manage.py check_invariants found:\n\n{report}\n")
    else:
        logger.info("invariant check: all hold")
    return len(violations)
