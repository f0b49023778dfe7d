"""One Acumatica read per document per change: the work message carries what the poller read, the worker trusts it
only on a first delivery while fresh, and re-reads otherwise, so nothing is missed when a document changes between
poll and work, and a replay days later acts on the document as it is then."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connector.model import Document, DocumentKey, WorkMessage, document_from_json, document_to_json
from connector.sync import CARRIED_DOCUMENT_BYTES, PollOptions, SyncContext, carried, poll_entity, sync_document
from tests.fakes import FakeAcumatica, FakeJira, make_doc

SKEW = 2.5
"""The Acumatica adapter's clock runs this far behind the worker's: two hosts never agree exactly."""


class StampingAcumatica(FakeAcumatica):
    """Stamps every read with its own clock, as ``AcumaticaClient`` does, and counts requests: one per page and
    one per single-document read."""

    def __init__(self, clock, *docs: Document) -> None:
        super().__init__(*docs)
        self._clock = clock
        self.page_requests = 0

    def _stamped(self, doc: Document) -> Document:
        return replace(doc, read_at=datetime.fromtimestamp(self._clock() - SKEW, timezone.utc))

    def changed_pages(self, entity, since, *, skip=0, page_size=500):
        for page in super().changed_pages(entity, since, skip=skip, page_size=page_size):
            self.page_requests += 1
            yield replace(page, documents=[self._stamped(d) for d in page.documents])

    def get(self, key):
        doc = super().get(key)
        return self._stamped(doc) if doc is not None else None

    @property
    def requests(self) -> int:
        return self.page_requests + self.gets


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[WorkMessage] = []

    def send(self, messages) -> None:
        self.sent.extend(messages)


def context(acu, jira, store, clock, fresh_for=300.0) -> SyncContext:
    return SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                       owner_map={}, labels=("acumatica",), cleared_status="", clock=clock,
                       fresh_for_seconds=fresh_for)


def recorded_status(store) -> str:
    """The document status the connector last brought Jira in line with (the stored snapshot)."""
    return store.get_state(DocumentKey("Bill", "Bill", "000123")).snapshot["status"]


def poll(acu, store, clock, queue, page_size=500):
    return poll_entity("Bill", documents=acu, store=store, queue=queue,
                       options=PollOptions(page_size=page_size, resume_margin=0),
                       now=lambda: datetime.fromtimestamp(clock(), timezone.utc), seconds_left=lambda: 300.0,
                       correlation_id="poll")


def test_a_5000_document_backlog_costs_one_acumatica_request_per_page(store, clock) -> None:
    docs = [make_doc(number=f"{n:06d}", status="On Hold" if n % 10 == 0 else "Balanced", hold=n % 10 == 0)
            for n in range(5_000)]
    acu, jira, queue = StampingAcumatica(clock, *docs), FakeJira(), ListQueue()

    report = poll(acu, store, clock, queue)
    clock.advance(30)  # the worker takes the messages half a minute later
    outcomes = [sync_document(m, context(acu, jira, store, clock), attempt=1) for m in queue.sent]

    assert len(queue.sent) == 500 and set(outcomes) == {"created"} and len(jira.issues) == 500
    assert acu.gets == 0
    assert acu.requests == report.pages == 11  # ten full pages and the empty page that ends the list


def test_a_change_after_the_poll_reaches_jira_on_the_next_poll(store, clock) -> None:
    acu, jira, queue = StampingAcumatica(clock, make_doc(status="On Hold")), FakeJira(), ListQueue()
    poll(acu, store, clock, queue)
    later = make_doc(status="Pending Approval", hold=False, modified=datetime.fromtimestamp(clock() + 5, timezone.utc))
    acu.put(later)  # changed in Acumatica after the poll read it, before the worker ran
    clock.advance(10)

    assert sync_document(queue.sent[-1], context(acu, jira, store, clock)) == "created"
    assert recorded_status(store) == "On Hold"  # the worker acted on what the poll read, not on a second read
    clock.advance(300)
    poll(acu, store, clock, queue)
    clock.advance(10)

    assert sync_document(queue.sent[-1], context(acu, jira, store, clock)) == "updated"
    assert recorded_status(store) == "Pending Approval" and len(jira.issues) == 1
    assert acu.gets == 0


def test_a_replay_days_later_acts_on_the_document_as_it_is_then(store, clock) -> None:
    acu, jira, queue = StampingAcumatica(clock, make_doc(status="On Hold")), FakeJira(), ListQueue()
    poll(acu, store, clock, queue)
    (message,) = queue.sent
    acu.put(make_doc(status="Rejected", hold=False))
    clock.advance(3 * 86400)  # replayed from the DLQ three days later

    assert sync_document(message, context(acu, jira, store, clock), attempt=1) == "created"
    assert recorded_status(store) == "Rejected" and acu.gets == 1


def test_a_retry_re_reads_even_inside_the_freshness_window(store, clock) -> None:
    acu, jira, queue = StampingAcumatica(clock, make_doc(status="On Hold")), FakeJira(), ListQueue()
    poll(acu, store, clock, queue)
    acu.put(make_doc(status="Rejected", hold=False))
    clock.advance(5)

    sync_document(queue.sent[0], context(acu, jira, store, clock), attempt=2)

    assert acu.gets == 1 and recorded_status(store) == "Rejected"


def test_freshness_zero_and_a_read_stamped_in_the_future_both_re_read(store, clock) -> None:
    acu, jira, queue = StampingAcumatica(clock, make_doc(status="On Hold")), FakeJira(), ListQueue()
    poll(acu, store, clock, queue)
    (message,) = queue.sent
    future = {**message.document, "read_at": datetime.fromtimestamp(clock() + 60, timezone.utc).isoformat()}

    sync_document(message, context(acu, jira, store, clock, fresh_for=0), attempt=1)
    sync_document(replace(message, document=future, dedupe_id="again"),
                  context(acu, FakeJira(), store, clock), attempt=1)

    assert acu.gets == 2


def test_a_carried_document_for_another_key_or_malformed_is_ignored(store, clock) -> None:
    acu, jira = StampingAcumatica(clock, make_doc(number="000123")), FakeJira()
    other = document_to_json(replace(make_doc(number="000999"), read_at=datetime.fromtimestamp(clock(), timezone.utc)))
    message = WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id="d", correlation_id="c",
                          document=other)

    sync_document(message, context(acu, jira, store, clock))
    sync_document(replace(message, document={"key": "Bill:Bill:000123", "amount": "not a number"}, dedupe_id="e"),
                  context(acu, FakeJira(), store, clock))

    assert acu.gets == 2


def test_an_oversized_or_unstamped_document_travels_without_its_read() -> None:
    stamped = replace(make_doc(), read_at=datetime(2026, 11, 24, tzinfo=timezone.utc))
    huge = replace(stamped, description="x" * CARRIED_DOCUMENT_BYTES)

    assert carried(stamped) is not None
    assert carried(huge) is None and carried(make_doc()) is None


def test_ten_carried_messages_fit_one_send_message_batch() -> None:
    doc = replace(make_doc(), description="d" * 4000, fields={f"Field{n}": "v" * 100 for n in range(60)},
                  read_at=datetime(2026, 11, 24, tzinfo=timezone.utc))
    message = WorkMessage(kind="sync", external_id=doc.key.external_id, dedupe_id="d" * 80, correlation_id="c" * 36,
                          fingerprint="f" * 32, reason="r" * 200, document=carried(doc))

    assert message.document is not None
    assert 10 * len(message.to_json().encode()) <= 256 * 1024


_text = st.text(max_size=30)
_amounts = st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**12,
                                   max_value=10**12)
_times = st.none() | st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-5))]))
_plain = st.none() | st.booleans() | st.integers(-10**9, 10**9) | _text | st.floats(allow_nan=False)
documents = st.builds(
    Document,
    key=st.builds(DocumentKey, st.sampled_from(["Bill", "PurchaseOrder", "Check"]),
                  st.text(min_size=1, max_size=8).filter(lambda type_: ":" not in type_),  # DocumentKey refuses ':'
                  st.text(min_size=1, max_size=12)),
    status=_text, hold=st.booleans(), vendor=_text, amount=_amounts, currency=_text, last_modified=_times,
    control_amount=_amounts, total_amount=_amounts, owner=st.none() | _text, description=_text,
    id=st.none() | _text, errors=st.dictionaries(_text, _text, max_size=3),
    fields=st.dictionaries(_text, _plain, max_size=6), read_at=_times)


@given(documents)
def test_a_carried_document_comes_back_exactly_as_the_poller_read_it(doc: Document) -> None:
    data = carried(doc)

    if data is not None:
        back = document_from_json(json.loads(WorkMessage(kind="sync", external_id=doc.key.external_id,
                                                         dedupe_id="d", correlation_id="c", document=data
                                                         ).to_json())["document"])
        assert back == doc and back.read_at == doc.read_at
        assert (back.amount, back.control_amount, back.total_amount) == (doc.amount, doc.control_amount,
                                                                         doc.total_amount)
    else:  # only an unstamped or oversized document travels without its read
        assert doc.read_at is None or len(json.dumps(document_to_json(doc))) > CARRIED_DOCUMENT_BYTES


def test_decimal_amounts_keep_their_exponent() -> None:
    doc = replace(make_doc(amount="1250.10"), read_at=datetime(2026, 11, 24, tzinfo=timezone.utc))

    assert str(document_from_json(carried(doc)).amount) == "1250.10"
    assert document_from_json(carried(doc)).amount == Decimal("1250.10")
