"""In-memory stand-ins for the small ports, for unit tests that need no AWS at all."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any, Mapping


class MemorySecret:
    """A ``SecretStore`` held in memory; counts writes so tests can assert on persistence order."""

    def __init__(self, value: Mapping[str, Any]) -> None:
        self._value = dict(value)
        self._guard = threading.Lock()
        self.writes = 0

    def read(self) -> dict[str, Any]:
        with self._guard:
            return copy.deepcopy(self._value)

    def write(self, value: Mapping[str, Any]) -> None:
        with self._guard:
            self._value = copy.deepcopy(dict(value))
            self.writes += 1


class MemoryLock:
    """A ``LeaseLock`` held in memory, with real lease expiry."""

    def __init__(self, clock=time.time) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()
        self._clock = clock

    def acquire(self, name: str, owner: str, lease_seconds: float) -> bool:
        with self._guard:
            current = self._held.get(name)
            if current and current[0] != owner and current[1] > self._clock():
                return False
            self._held[name] = (owner, self._clock() + lease_seconds)
            return True

    def release(self, name: str, owner: str) -> None:
        with self._guard:
            if self._held.get(name, ("",))[0] == owner:
                del self._held[name]
