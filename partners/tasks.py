"""Settlement's background jobs (beat): close due periods daily, auto-confirm past the window."""

from __future__ import annotations

from celery import shared_task

from partners.services import statements


@shared_task(acks_late=True)
def close_statements_daily() -> int:
    """Close every period that has ended, then auto-confirm unanswered statements. Safe twice."""
    created = statements.close_statements()
    statements.auto_confirm_due()
    return len(created)
