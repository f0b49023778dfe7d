"""Scripted faults for any adapter: a proxy that makes chosen calls fail before they act (nothing happened: a 503,
a refused token, a 429 after its retries) or after they act (it happened, the answer was lost: a read timeout).

The core tests and ``tests.reliability`` drive the same proxies, so every fault in the matrix is one that a unit test
also pins down. Failures are consumed in the order they were scripted, per method name.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Callable


class Faults:
    """Proxies ``target``; ``fail(name, exc)`` makes the next call(s) to ``target.name`` raise ``exc``."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._plan: dict[str, deque[tuple[Callable[[], BaseException] | None, bool]]] = defaultdict(deque)
        self.raised: list[str] = []

    def fail(self, name: str, error: Callable[[], BaseException], *, times: int = 1, after: bool = False,
             skip: int = 0) -> "Faults":
        """Script ``times`` failures of ``name`` after ``skip`` calls that succeed; ``after=True`` lets the call take
        effect first, then raises (the answer was lost)."""
        for _ in range(skip):
            self._plan[name].append((None, False))
        for _ in range(times):
            self._plan[name].append((error, after))
        return self

    def pending(self, name: str) -> int:
        return len(self._plan[name])

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            plan = self._plan.get(name)
            if not plan:
                return attribute(*args, **kwargs)
            error, after = plan.popleft()
            if error is None:
                return attribute(*args, **kwargs)
            if after:
                attribute(*args, **kwargs)
            self.raised.append(name)
            raise error()

        return call
