"""A request waiting for a busy model's lock stops waiting once it is cancelled."""

from __future__ import annotations

import threading

from llmux import Cancellation
from llmux.kit import acquire


def test_a_free_lock_is_taken():
    lock = threading.Lock()
    assert acquire(lock, Cancellation())
    assert lock.locked()


def test_a_cancelled_wait_returns_without_the_lock():
    lock = threading.Lock()
    lock.acquire()  # another request is generating
    cancel = Cancellation()
    result: list[bool] = []
    started = threading.Event()

    def wait() -> None:
        started.set()
        result.append(acquire(lock, cancel))

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    started.wait()
    cancel.cancel()  # the client went away; the lock is still held
    waiter.join(30)
    assert not waiter.is_alive() and result == [False]
    lock.release()
    assert not lock.locked()  # nobody took it


def test_already_cancelled_leaves_a_free_lock_free():
    lock = threading.Lock()
    cancel = Cancellation()
    cancel.cancel()
    assert acquire(lock, cancel) is False
    assert not lock.locked()
