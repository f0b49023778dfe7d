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
DATE_RESOLUTION = timedelta(seconds=1)
"""The HTTP ``Date`` header names whole seconds: the server's time was within the second after the one it names."""


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




STEP_TOLERANCE = 2 * DATE_RESOLUTION
"""``Date`` moving back by no more than this against its earlier reading (whole seconds at both ends, two Lambda
hosts' clocks between) is not taken for a clock going back."""


def stepped_back(server_now: datetime | None, server_then: datetime | None, since_then: timedelta) -> bool:
    """Whether Acumatica's ``Date`` moved back against its own earlier reading: it reads less now than it did at the
    last check plus the time the Lambda's clock says has passed since (beyond ``STEP_TOLERANCE``)."""
    if server_now is None or server_then is None:
        return False
    return server_now - max(since_then, timedelta(0)) < server_then - STEP_TOLERANCE


def stamp_lead(documents: list[Document], server_time: datetime | None, newer_than: str | None) -> timedelta | None:
    """How far the newest stamp of a page, among stamps newer than ``newer_than``, is ahead of the ``Date`` header the
    page came with; ``None`` when the page has no such stamp or no ``Date``.

    ``LastModifiedDateTime`` is written by the database server's clock, ``Date`` by the web node's (or a proxy's),
    and on a hosted tenant the two differ. An edit stamped ``s`` was made no later than it was read, so ``s - Date``
    is at most how far the database's clock is ahead of the web node's (unless the clock went back between the edit
    and the read, which the poller's next check of ``Date`` sees: it then discards what the pass learned). Only
    stamps newer than the last completed pass's watermark count: after a clock that ran ahead is put right, the
    stamps it wrote are still ahead of ``Date``, and learning from them would explain the correction away."""
    if server_time is None:
        return None
    fresh = [stamp for doc in documents if (stamp := stamp_text(doc)) is not None
             and (newer_than is None or _comparable(parse(stamp)) > _comparable(parse(newer_than)))]
    if not fresh:
        return None
    return max(_comparable(parse(stamp)) for stamp in fresh) - server_time


def greater_lead(current: timedelta | None, candidate: timedelta | None) -> timedelta | None:
    """The greater of two leads (``None`` loses)."""
    if current is None or candidate is None:
        return candidate if current is None else current
    return max(current, candidate)


def server_bound(pass_from: datetime, server_now: datetime | None, server_then: datetime | None,
                 since_then: timedelta, overlap: timedelta, lead: timedelta | None = None) -> datetime | None:
    """Where a pass must start instead of ``pass_from`` because Acumatica's clock went back; ``None``: it need not.

    The watermark is a stamp Acumatica wrote, so it is a safe start only while Acumatica's clock does not go back.
    When it does (an NTP correction, or a clock that ran ahead and was put right), every edit after the correction
    carries a stamp earlier than the watermark, and a filter from the watermark hides them until the clock catches
    up. So the start is also bounded by Acumatica's own clock as its HTTP ``Date`` header shows it: ``server_then``
    when the last pass checked, ``server_now`` on this pass's first page, ``since_then`` between the two by the
    Lambda's clock. Given at most one jump since that check, an edit made after it was stamped no earlier than the
    lesser of ``server_then`` (the clock went forward, or not at all, before the edit) and ``server_now -
    since_then`` (it went back before the edit, and has run evenly since), translated from the web node's clock to
    the database's by ``lead`` (``stamp_lead``, learned from the data and confirmed by a later check that saw no step
    back; a ``Date`` that merely lags the stamps is the web node's clock, not a clock going back). The pass starts ``overlap`` before that bound when it
    would start later (the overlap also covers latency, the header's whole seconds and two Lambda hosts' clocks); a
    normal pass starts long before it and keeps its start, so an ordinary poll re-reads nothing. So a rewind happens
    only when ``Date`` moves back against its own earlier readings by more than the data explains. Without a ``Date``
    header there is nothing to compare with, and the start stands.

    What it cannot see: a database clock that steps back while the web node's does not (``Date`` does not move), or
    two jumps between polls; the weekly full pass (``FullPassDays``) finds what they hid. A web node clock that steps
    back alone costs one rewind's re-reads, and the next fresh stamps teach the new lead.
    """
    if server_now is None:
        return None
    bound = server_now + DATE_RESOLUTION - max(since_then, timedelta(0))
    if server_then is not None:
        bound = min(bound, server_then + DATE_RESOLUTION)
    start = bound + (lead or timedelta(0)) - overlap
    if _comparable(pass_from) <= start:
        return None
    return start.astimezone(pass_from.tzinfo) if pass_from.tzinfo is not None else start
