"""Waiting that a cancelled request stops.

A runtime that serves one call at a time per model waits for that model's lock; a request
whose client has gone should stop waiting rather than hold a worker until the lock is free.
:func:`acquire` waits in short slices and gives up once ``cancel`` is set.
"""

from __future__ import annotations

import threading
from typing import Any

POLL_SECONDS = 0.05  # how long one slice of waiting lasts


def acquire(lock: threading.Lock, cancel: Any, poll: float = POLL_SECONDS) -> bool:
    """Take ``lock`` (True), or return False once ``cancel`` (anything with ``cancelled``,
    e.g. :class:`llmux.Cancellation`) is set: while waiting, or before the caller got it
    (the lock is then released again). The caller releases a lock it got."""
    while not lock.acquire(timeout=poll):
        if cancel.cancelled:
            return False
    if cancel.cancelled:
        lock.release()
        return False
    return True
