"""Waiting on a condition, not on the clock: tests poll what they wait for, with a
deadline that only a failure reaches (generous, for a busy machine)."""

from __future__ import annotations

import time


def wait_for(condition, seconds: float = 60.0, what: str = "condition", poll: float = 0.01):
    """Return once `condition()` holds; AssertionError naming `what` past `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)
