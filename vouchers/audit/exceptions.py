"""Errors of the audit log."""

from __future__ import annotations


class AppendOnlyViolation(RuntimeError):
    """An audit entry was about to be changed or deleted: the log is append-only."""
