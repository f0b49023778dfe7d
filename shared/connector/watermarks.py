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


DATE_RESOLUTION = timedelta(seconds=1)
"""The HTTP ``Date`` header names whole seconds: the server's time was within the second after the one it names."""


def server_bound(pass_from: datetime, server_now: datetime | None, server_then: datetime | None,
                 since_then: timedelta, overlap: timedelta) -> datetime | None:
    """Where a pass must start instead of ``pass_from`` because Acumatica's clock went back; ``None``: it need not.

    The watermark is a stamp Acumatica wrote, so it is a safe start only while Acumatica's clock does not go back.
    When it does (an NTP correction, or a clock that ran ahead and was put right), every edit after the correction
    carries a stamp earlier than the watermark, and a filter from the watermark hides them until the clock catches
    up. So the start is also bounded by Acumatica's own clock (its HTTP ``Date`` header): ``server_then`` when the
    last pass checked, ``server_now`` on this pass's first page, ``since_then`` between the two by the Lambda's clock.
    Given at most one jump since that check, an edit made after it was stamped no earlier than the lesser of
    ``server_then`` (the clock went forward, or not at all, before the edit) and ``server_now - since_then`` (it went
    back before the edit, and has run evenly since). The pass starts ``overlap`` before that bound when it would start
    later (the overlap also covers latency and two Lambda hosts' clocks); a normal pass starts long before it and
    keeps its start, so an ordinary poll re-reads nothing. Without a ``Date`` header there is nothing to compare
    with, and the start stands.
    """
    if server_now is None:
        return None
    bound = server_now + DATE_RESOLUTION - max(since_then, timedelta(0))
    if server_then is not None:
        bound = min(bound, server_then + DATE_RESOLUTION)
    start = bound - overlap
    if _comparable(pass_from) <= start:
        return None
    return start.astimezone(pass_from.tzinfo) if pass_from.tzinfo is not None else start
