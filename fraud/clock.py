"""The one clock every fraud window, lockout and back-off reads.

Counter windows are derived from `now()` (bucket numbers are part of the keys) and
lockouts store the moment they end, so behaviour depends only on this function:
tests replace it to freeze or advance time without sleeping. Cache TTLs exist only
to reclaim memory and never decide anything.
"""

from __future__ import annotations

import time


def now() -> float:
    """Seconds since the epoch (UTC)."""
    return time.time()
