"""Periodic work of the console: fold events into the daily roll-ups, count codes expiring by their
own date, raise stock and expiry alerts."""

from __future__ import annotations

from celery import shared_task

from vouchers.dashboard import rollup


@shared_task(acks_late=True)
def roll_up_dashboard_figures() -> dict[str, int]:
    """Fold new code events and risk assessments into the daily roll-ups (safe to run twice)."""
    return rollup.fold_all()


@shared_task(acks_late=True)
def refresh_expiring_codes() -> int:
    """Rebuild the per-day counts of codes expiring by their own date (safe to run twice)."""
    return rollup.refresh_expiring_codes()


@shared_task(acks_late=True)
def check_stock_alerts() -> dict[str, int]:
    """Raise low-stock and expiring-soon alerts (once per crossing) and clear those that passed."""
    from vouchers.dashboard.alerts import check_alerts

    return check_alerts()
