"""The tables in effect in a running function: the parameters, overridden table by table by the current imported
version, re-read at most every ``TABLES_CACHE_SECONDS`` and never replaced by a version that fails validation.

An imported version is data someone (or something) wrote into the table: the pointer to the current version is a
claim, the document it points at is checked by the same validators as an import before anything routes on it. A
version that fails (written by hand, damaged, or valid only for an older release) is refused: the container keeps the
tables it had, and a container that has none yet takes the newest earlier version that passes, else the parameters,
so every container agrees. Each refusal is logged and counted (the ``TablesRefused`` metric).

Reading is cheap: one small read of the pointer per interval, the document only when the pointer moved. Pure: the
version store and the parameter source are passed in (``connector.table_store`` implements them over DynamoDB and
Secrets Manager).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Callable, Mapping, Protocol

from . import timings
from .config import Settings
from .errors import ConfigurationError, TransientError
from .tables import apply_tables, parse_document

logger = logging.getLogger(__name__)

FALLBACK_DEPTH = 10
"""How many earlier versions a container with no tables yet tries when the current one is refused."""


@dataclass(frozen=True)
class VersionInfo:
    """One stored version: who made it current, when, how (an import, or a rollback to an earlier version)."""

    number: int
    at: str
    by: str
    action: str
    tables: tuple[str, ...]
    digest: str
    size: int
    rollback_of: int | None = None
    effect: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    """The file name an import was given (for people; the content is what counts)."""


class VersionStore(Protocol):
    def current(self) -> int | None:
        """The number of the current version (one small read), ``None`` before the first import."""

    def load(self, number: int) -> dict[str, Any]:
        """A version's document, whole and verified against its digest; ``ConfigurationError`` if damaged or gone."""

    def history(self) -> list[VersionInfo]:
        """Every version, newest first."""


@dataclass(frozen=True)
class InEffect:
    """What a container routes on: the settings with every table applied, and where the tables came from."""

    settings: Settings
    parameters: Settings
    """The same settings with only the parameters' tables: what a version's tables are applied to."""
    version: int | None = None
    """The imported version applied, ``None`` when every table is a parameter's."""
    document: Mapping[str, Any] = field(default_factory=dict)
    """That version's document (the tables it overrides), as imported."""
    refused: Mapping[int, str] = field(default_factory=dict)
    """Versions refused at read time, with the reason."""
    pointer: int | None = None
    """The current version the store names (differs from ``version`` when that one was refused)."""


class TablesInEffect:
    """The tables a container routes on, refreshed at most every ``max_age`` seconds.

    ``parameters`` returns the environment the settings are parsed from, parameter tables included (re-read on the
    same cadence: a stack update changes them without replacing the functions); ``versions`` is the version store,
    or ``None`` where nothing is ever imported."""

    def __init__(self, parameters: Callable[[], Mapping[str, str]], versions: VersionStore | None, *,
                 max_age: float = timings.TABLES_CACHE_SECONDS, clock: Callable[[], float] | None = None) -> None:
        self._parameters = parameters
        self._versions = versions
        self._max_age = max_age
        self._clock = clock
        self._checked_at: float | None = None
        self._env: Mapping[str, str] | None = None
        self._base: Settings | None = None
        self._pointer: int | None = None
        self._version: tuple[int, Mapping[str, Any], Mapping[str, Any]] | None = None
        self._refused: dict[int, str] = {}
        self._current: InEffect | None = None
        self.refusals = 0
        """Versions (and parameter changes) refused so far in this container: the ``TablesRefused`` metric."""

    def now(self) -> float:
        return (self._clock or monotonic)()

    def get(self) -> InEffect:
        """The tables in effect; reads the pointer (and the parameters) when the last read is ``max_age`` old.

        Before anything was read a failure to read propagates (a ``TransientError``: the work is retried, never
        routed on guesses); later, the container keeps routing on what it has and tries again next interval."""
        now = self.now()
        if self._current is not None and self._checked_at is not None and now - self._checked_at < self._max_age:
            return self._current
        try:
            self._current = self._refresh()
        except (TransientError, ConfigurationError):
            if self._current is None:
                raise
            logger.warning("could not re-read the tables; routing stays on what this container read last",
                           exc_info=True)
        self._checked_at = now
        return self._current

    def _refresh(self) -> InEffect:
        base = self._read_base()
        pointer = self._versions.current() if self._versions is not None else None
        if pointer != self._pointer:
            self._version = self._choose(pointer)
            self._pointer = pointer
        number, document, tables = self._version if self._version else (None, {}, {})
        before = self._current
        if before is not None and before.parameters is base and before.version == number:
            settings = before.settings  # the same object: what a container built on it (its contexts) stands
        else:
            settings = apply_tables(base, tables) if tables else base
        return InEffect(settings, base, number, document, dict(self._refused), pointer)

    def _read_base(self) -> Settings:
        env = self._parameters()
        if self._base is not None and env == self._env:
            return self._base
        try:
            base = Settings.from_env(env)
        except ConfigurationError as refusal:
            if self._base is None:
                raise
            self.refusals += 1
            logger.error("parameters refused; routing stays on the parameters read before: %s", refusal)
            return self._base
        self._env, self._base = dict(env), base
        return base

    def _choose(self, pointer: int | None) -> tuple[int, Mapping[str, Any], Mapping[str, Any]] | None:
        """The version to route on now that the pointer names ``pointer``."""
        if pointer is None:
            return None
        accepted = self._accept(pointer)
        if accepted is not None:
            return accepted
        if self._version is not None:
            logger.error("tables version %s refused; routing stays on version %s", pointer, self._version[0])
            return self._version
        for earlier in range(pointer - 1, max(0, pointer - 1 - FALLBACK_DEPTH), -1):
            accepted = self._accept(earlier)
            if accepted is not None:
                logger.error("tables version %s refused; routing on version %s, the newest that passes", pointer,
                             earlier)
                return accepted
        logger.error("tables version %s refused and no earlier version passes; routing on the parameters", pointer)
        return None

    def _accept(self, number: int) -> tuple[int, Mapping[str, Any], Mapping[str, Any]] | None:
        if number in self._refused:
            return None
        try:
            document = self._versions.load(number)  # type: ignore[union-attr]
            tables = parse_document(document, f"tables version {number}")
        except ConfigurationError as refusal:
            self._refused[number] = str(refusal)
            self.refusals += 1
            logger.error("refused: %s", refusal)
            return None
        return number, document, tables

