"""The poll watermark, taken from the data: the greatest ``LastModifiedDateTime`` Acumatica rendered, never a clock.

Acumatica stamps ``LastModifiedDateTime`` with its own clock and renders it with its tenant's offset; it compares a
``$filter`` with those same stamps. A watermark read from the Lambda's clock falls behind (or ahead of) them whenever
the two clocks or time zones disagree, and every change stamped before it is missed. So the connector keeps the
greatest stamp it *read*, as text exactly as Acumatica rendered it, and filters the next pass from that instant minus
the overlap, rendered back in the same offset. Everything here is pure.

Values without an offset: the instant they denote is unknown (the tenant's zone is not in the value), anywhere within
the range of UTC offsets. Such values are compared with one another as if they were UTC (consistent with each other,
which is all a maximum needs), and a filter derived from one is widened by ``NAIVE_WIDENING`` so that whatever zone
the tenant meant, the window still starts before the stamp. That costs re-reads (an unchanged document costs a read,
never a message), never a missed change.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .model import Document

NAIVE_WIDENING = timedelta(hours=14)
"""UTC offsets span -12:00 to +14:00: a value without an offset is within 14 hours of the same digits read as UTC."""


def parse(text: str) -> datetime:
    """The instant of a rendered stamp, keeping the offset it was rendered with (naive if it had none)."""
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _comparable(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def stamp_text(doc: Document) -> str | None:
    """``LastModifiedDateTime`` of ``doc`` as Acumatica rendered it, or ``None`` when the record had none."""
    raw: Any = doc.fields.get("LastModifiedDateTime")
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    return doc.last_modified.isoformat() if doc.last_modified is not None else None


def later(current: str | None, candidate: str | None) -> str | None:
    """The later of two rendered stamps, by instant (``None`` loses); ties keep ``current``, so it never moves back."""
    if candidate is None:
        return current
    if current is None:
        return candidate
    return candidate if _comparable(parse(candidate)) > _comparable(parse(current)) else current


def greatest(current: str | None, documents: list[Document]) -> str | None:
    """The running maximum after reading ``documents``."""
    for doc in documents:
        current = later(current, stamp_text(doc))
    return current


def filter_from(watermark: str, lookback: timedelta) -> datetime:
    """Where the next pass starts: the watermark's instant minus ``lookback``, in the offset it was rendered with.

    A watermark without an offset is widened by ``NAIVE_WIDENING`` and sent as UTC (the filter needs an offset).
    """
    moment = parse(watermark)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc) - lookback - NAIVE_WIDENING
    return moment - lookback
