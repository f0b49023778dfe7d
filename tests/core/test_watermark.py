"""The watermark comes from the data: Acumatica's own stamps, whatever its clock and time zone say."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from connector import watermarks
from connector.ports import Cursor
from connector.store import DynamoStore
from connector.sync import EVERYTHING, PollOptions, SyncContext, poll_entity, sync_document
from tests.core.conftest import Clock, table_definition
from tests.fakes import FakeAcumatica, FakeJira, make_doc

LAMBDA_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
BRISBANE = timezone(timedelta(hours=10))
OVERLAP = timedelta(minutes=10)


class ListQueue:
    def __init__(self):
        self.sent = []

    def send(self, messages):
        self.sent.extend(messages)


def poll(acu, store, queue, now=lambda: LAMBDA_NOW, **options):
    return poll_entity("Bill", documents=acu, store=store, queue=queue,
                       options=PollOptions(overlap=OVERLAP, resume_margin=0, **options), now=now,
                       seconds_left=lambda: 300.0, correlation_id="c")


def rendered(doc, text):
    """The document as the client builds it: the parsed stamp, and the text Acumatica sent in ``fields``."""
    return replace(doc, last_modified=watermarks.parse(text), fields={**doc.fields, "LastModifiedDateTime": text})


def filters_of(acu):
    seen = []
    original = acu.changed_pages

    def spy(entity, since, **kwargs):
        seen.append(since)
        return original(entity, since, **kwargs)

    acu.changed_pages = spy
    return seen


# --- the module ----------------------------------------------------------------------------------------------


def test_later_compares_instants_not_text_and_never_moves_back():
    assert watermarks.later("2026-11-24T20:00:00.000+10:00", "2026-11-24T11:00:00.000+00:00") == \
        "2026-11-24T11:00:00.000+00:00"  # 10:00Z < 11:00Z, though "20" > "11"
    assert watermarks.later("2026-11-24T11:00:00.000+00:00", "2026-11-24T20:00:00.000+10:00") == \
        "2026-11-24T11:00:00.000+00:00"
    assert watermarks.later("2026-11-24T11:00:00+00:00", None) == "2026-11-24T11:00:00+00:00"
    assert watermarks.later(None, "2026-11-24T11:00:00+00:00") == "2026-11-24T11:00:00+00:00"


def test_the_filter_keeps_the_offset_acumatica_rendered_the_watermark_with():
    since = watermarks.filter_from("2026-11-24T22:00:00.1234567+10:00", OVERLAP)
    assert since.utcoffset() == timedelta(hours=10)
    assert since == datetime(2026, 11, 24, 21, 50, 0, 123456, tzinfo=BRISBANE)


def test_a_value_without_an_offset_widens_the_filter_by_every_possible_offset():
    since = watermarks.filter_from("2024-05-05T15:16:23.1", OVERLAP)
    assert since == datetime(2024, 5, 5, 15, 6, 23, 100000, tzinfo=timezone.utc) - timedelta(hours=14)
    # whatever zone the tenant meant (UTC-12 .. UTC+14), the window starts before the stamp
    for hours in range(-12, 15):
        meant = datetime(2024, 5, 5, 15, 16, 23, 100000, tzinfo=timezone(timedelta(hours=hours)))
        assert since <= meant


# --- polling -------------------------------------------------------------------------------------------------


def test_a_clock_days_behind_still_has_its_next_change_read(store):
    behind = LAMBDA_NOW - timedelta(days=2)  # Acumatica's clock, rendered in +10:00
    stamp = behind.astimezone(BRISBANE).isoformat(timespec="milliseconds")
    acu, queue = FakeAcumatica(rendered(make_doc(), stamp)), ListQueue()
    report = poll(acu, store, queue)
    assert report.watermark == stamp
    cursor = store.get_cursor("Bill")
    assert cursor.watermark_text == stamp and cursor.watermark == behind

    later_stamp = (behind + timedelta(minutes=3)).astimezone(BRISBANE).isoformat(timespec="milliseconds")
    acu.put(rendered(make_doc(number="000200"), later_stamp))
    seen = filters_of(acu)
    again = ListQueue()
    poll(acu, store, again)
    assert seen == [behind.astimezone(BRISBANE) - OVERLAP] and seen[0].utcoffset() == timedelta(hours=10)
    assert "Bill:Bill:000200" in {m.external_id for m in again.sent}


def test_a_pass_that_reads_nothing_keeps_the_watermark_and_an_older_maximum_does_not_move_it_back(store):
    stamp = "2026-11-24T08:00:00.000-05:00"
    acu, queue = FakeAcumatica(rendered(make_doc(), stamp)), ListQueue()
    poll(acu, store, queue)
    acu.docs.clear()
    poll(acu, store, queue)
    assert store.get_cursor("Bill").watermark_text == stamp
    acu.put(rendered(make_doc(number="000300"), "2026-11-24T12:55:00.000+00:00"))  # 07:55 -05:00, in the overlap
    poll(acu, store, queue)
    assert store.get_cursor("Bill").watermark_text == stamp
    assert "Bill:Bill:000300" in {m.external_id for m in queue.sent}


def test_the_first_pass_of_a_new_entity_reads_everything_or_the_initial_lookback_by_the_lambda_clock(store):
    acu = FakeAcumatica()
    seen = filters_of(acu)
    poll(acu, store, ListQueue())
    poll_entity("PurchaseOrder", documents=acu, store=store, queue=ListQueue(),
                options=PollOptions(initial_lookback=timedelta(days=30)), now=lambda: LAMBDA_NOW,
                seconds_left=lambda: 300.0, correlation_id="c")
    assert seen == [EVERYTHING, LAMBDA_NOW - timedelta(days=30)]


def test_two_changes_inside_one_overlap_window_both_reach_the_queue(store):
    base = datetime(2026, 11, 24, 1, 0, tzinfo=BRISBANE)
    acu, queue = FakeAcumatica(rendered(make_doc(number="000001"), base.isoformat())), ListQueue()
    poll(acu, store, queue)
    for number, seconds in (("000002", 1), ("000003", 2)):
        acu.put(rendered(make_doc(number=number), (base + timedelta(seconds=seconds)).isoformat()))
    second = ListQueue()
    poll(acu, store, second)
    assert {"Bill:Bill:000002", "Bill:Bill:000003"} <= {m.external_id for m in second.sent}


def test_a_document_changed_while_the_pass_pages_is_read_by_the_next_pass(store):
    """A change lands on a page already read, and a later change on a page still to come is read: the next filter
    reaches back by the pass's duration, so the first change is not stranded behind the greatest stamp."""
    acu_clock = [datetime(2026, 11, 24, 3, 0, tzinfo=BRISBANE)]
    lambda_clock = [LAMBDA_NOW]
    docs = [rendered(make_doc(number=f"{n:06d}"), (acu_clock[0] - timedelta(hours=1, minutes=n)).isoformat())
            for n in range(1, 6)]
    acu, queue = FakeAcumatica(*docs), ListQueue()
    pages = acu.changed_pages
    missed = []

    def slow_pages(entity, since, **kwargs):
        for index, page in enumerate(pages(entity, since, **kwargs)):
            if index == 2:  # changed just before its page is read: this pass reads the new stamp
                acu.put(rendered(replace(page.documents[0], amount=Decimal("2.00")), acu_clock[0].isoformat()))
                page = replace(page, documents=[acu.docs[d.key] for d in page.documents])
            yield page
            acu_clock[0] += timedelta(minutes=30)  # a resumed pass can span runs: half an hour per page here
            lambda_clock[0] += timedelta(minutes=30)
            if index == 0:  # changed after its page was read: this pass does not see the change
                missed.append(rendered(replace(page.documents[0], amount=Decimal("1.00")), acu_clock[0].isoformat()))
                acu.put(missed[0])

    acu.changed_pages = slow_pages
    report = poll(acu, store, queue, now=lambda: lambda_clock[0], page_size=2)
    assert report.completed and report.pages == 3
    assert watermarks.parse(report.watermark) - missed[0].last_modified == timedelta(minutes=30)  # > the overlap
    acu.changed_pages = pages
    later = ListQueue()
    poll(acu, store, later, now=lambda: lambda_clock[0] + timedelta(minutes=5))
    assert missed[0].key.external_id in {m.external_id for m in later.sent}


def test_values_without_an_offset_are_kept_as_rendered_and_read_again_whatever_zone_they_meant(store):
    stamp = "2026-11-24T09:30:00.1"
    doc = make_doc()  # the fake filters by its own aware stamp; the connector sees only the text
    acu, queue = FakeAcumatica(replace(doc, fields={**doc.fields, "LastModifiedDateTime": stamp})), ListQueue()
    poll(acu, store, queue)
    assert store.get_cursor("Bill").watermark_text == stamp
    seen = filters_of(acu)
    poll(acu, store, queue)
    assert seen == [datetime(2026, 11, 24, 9, 20, 0, 100000, tzinfo=timezone.utc) - watermarks.NAIVE_WIDENING]


def test_a_watermark_stored_by_an_older_release_from_the_lambda_clock_is_not_trusted(store):
    store._table.put_item(Item={"PK": "WM#Bill", "SK": "WM", "skip": 0, "watermark": LAMBDA_NOW.isoformat(),
                                "full_pass_at": LAMBDA_NOW.isoformat()})
    stuck = rendered(make_doc(), (LAMBDA_NOW - timedelta(hours=5)).isoformat())  # missed by the old watermark
    acu, queue = FakeAcumatica(stuck), ListQueue()
    assert store.get_cursor("Bill").watermark is None
    poll(acu, store, queue)
    assert [m.external_id for m in queue.sent] == ["Bill:Bill:000123"]


def test_the_checkpoint_keeps_the_running_maximum_and_the_offset_of_the_filter(store):
    cursor = Cursor(pass_from=datetime(2026, 11, 24, 1, 0, tzinfo=BRISBANE), pass_started=LAMBDA_NOW, skip=40,
                    pass_max="2026-11-24T01:05:00.000+10:00", watermark_text="2026-11-24T00:59:00.000+10:00",
                    watermark=datetime(2026, 11, 24, 0, 59, tzinfo=BRISBANE), lookback=timedelta(seconds=12.5))
    store.put_cursor("Bill", cursor)
    back = store.get_cursor("Bill")
    assert back == cursor and back.pass_from.utcoffset() == timedelta(hours=10)


# --- the invariant -------------------------------------------------------------------------------------------

_tables = itertools.count()

edit = st.tuples(st.integers(0, 5), st.integers(1, 900), st.booleans())
"""(document, seconds since the previous event, whether it happens while the next poll is paging)"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(skew=st.timedeltas(min_value=-timedelta(days=10), max_value=timedelta(days=10)),
       offset_quarters=st.integers(-12 * 4, 14 * 4),
       rounds=st.lists(st.lists(edit, max_size=6), min_size=1, max_size=5))
def test_every_change_after_the_first_pass_is_queued_within_one_poll_and_only_once(skew, offset_quarters, rounds):
    zone = timezone(timedelta(minutes=15 * offset_quarters))
    lambda_now = [LAMBDA_NOW]
    last_stamp = [LAMBDA_NOW + skew - timedelta(days=1)]

    def stamp() -> str:
        """Acumatica's clock: the Lambda's moved by ``skew``, strictly increasing, in the tenant's zone."""
        last_stamp[0] = max(lambda_now[0] + skew, last_stamp[0] + timedelta(milliseconds=1))
        return last_stamp[0].astimezone(zone).isoformat(timespec="milliseconds")

    versions = [0] * 6
    acu = FakeAcumatica(*[rendered(make_doc(number=f"{n:06d}", amount="1000"), stamp()) for n in range(6)])

    def change(n: int) -> None:
        versions[n] += 1
        doc = acu.docs[make_doc(number=f"{n:06d}").key]
        acu.put(rendered(replace(doc, amount=Decimal(1000 + versions[n])), stamp()))

    pages = acu.changed_pages
    mid_pass: list[int] = []

    def paging(entity, since, **kwargs):
        for page in pages(entity, since, **kwargs):
            yield page
            lambda_now[0] += timedelta(seconds=20)
            while mid_pass:
                change(mid_pass.pop(0))

    acu.changed_pages = paging
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName=f"wm-{next(_tables)}", BillingMode="PAY_PER_REQUEST", **table_definition())
        store, jira, queue = DynamoStore(table, clock=Clock()), FakeJira(), ListQueue()
        ctx = SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                          owner_map={}, labels=(), cleared_status="", clock=Clock())

        def run_poll():
            as_of = list(versions)  # what the poll must reflect, at least: everything changed before it started
            poll(acu, store, queue, now=lambda: lambda_now[0], page_size=2)
            for message in queue.sent[handled[0]:]:
                sync_document(message, ctx)
            handled[0] = len(queue.sent)
            return as_of

        handled = [0]
        run_poll()  # the first pass
        for round_ in rounds:
            for n, seconds, during_poll in round_:
                lambda_now[0] += timedelta(seconds=seconds)
                if during_poll:
                    mid_pass.append(n)
                else:
                    change(n)
            as_of = run_poll()
            for n in range(6):
                state = store.get_state(make_doc(number=f"{n:06d}").key)
                reflected = Decimal(state.snapshot["amount"].split()[0].replace(",", "")) - 1000
                assert reflected >= as_of[n], f"document {n}: version {as_of[n]} not reached Jira"
        run_poll()
        dedupe_ids = [m.dedupe_id for m in queue.sent]
        assert len(dedupe_ids) == len(set(dedupe_ids)), "a change was queued twice"


def test_an_initial_lookback_that_reads_nothing_is_followed_by_a_pass_that_reads_everything(store):
    """The lookback is measured on the Lambda's clock; an Acumatica clock days further behind puts every stamp
    before it, so an empty first window is not trusted."""
    behind = rendered(make_doc(), (LAMBDA_NOW - timedelta(days=3)).isoformat())
    acu, queue = FakeAcumatica(behind), ListQueue()
    seen = filters_of(acu)
    for _ in range(2):
        poll(acu, store, queue, initial_lookback=timedelta(days=1))
    assert seen == [LAMBDA_NOW - timedelta(days=1), EVERYTHING]
    assert [m.external_id for m in queue.sent] == ["Bill:Bill:000123"]


SERVER_THEN = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def test_an_ordinary_pass_starts_before_acumaticas_clock_and_keeps_its_start():
    watermark = (SERVER_THEN - timedelta(minutes=1)).astimezone(BRISBANE)
    five_minutes = timedelta(minutes=5)

    assert watermarks.server_bound(watermark - OVERLAP, SERVER_THEN + five_minutes, SERVER_THEN, five_minutes,
                                   OVERLAP) is None
    assert watermarks.server_bound(watermark - OVERLAP, None, SERVER_THEN, five_minutes, OVERLAP) is None


def test_a_clock_put_back_starts_the_pass_before_the_edits_it_stamped_since_in_the_pass_offset():
    watermark = SERVER_THEN.astimezone(BRISBANE)
    corrected_now = SERVER_THEN - timedelta(hours=2) + timedelta(minutes=5)  # put back 2 h, then 5 min went by

    start = watermarks.server_bound(watermark - OVERLAP, corrected_now, SERVER_THEN, timedelta(minutes=5), OVERLAP)

    # The earliest an edit after the correction can be stamped is the corrected clock 5 minutes ago.
    assert start == SERVER_THEN - timedelta(hours=2) + watermarks.DATE_RESOLUTION - OVERLAP
    assert start.utcoffset() == timedelta(hours=10)


def test_a_clock_that_ran_ahead_bounds_the_start_by_what_it_read_at_the_last_check():
    ahead = SERVER_THEN + timedelta(hours=6)  # the last check read a clock 6 h ahead, and the watermark with it
    watermark = ahead - timedelta(minutes=1)
    put_right = SERVER_THEN + timedelta(minutes=5)

    start = watermarks.server_bound(watermark - OVERLAP, put_right, ahead, timedelta(minutes=5), OVERLAP)

    assert start == SERVER_THEN + watermarks.DATE_RESOLUTION - OVERLAP


def test_a_date_that_merely_lags_the_stamps_by_the_learned_lead_moves_no_start():
    lag = timedelta(minutes=90)  # the web node's clock (Date) runs 90 minutes behind the database's (stamps)
    watermark = (SERVER_THEN + lag - timedelta(minutes=1)).astimezone(BRISBANE)
    five_minutes = timedelta(minutes=5)
    now = SERVER_THEN + five_minutes

    assert watermarks.server_bound(watermark - OVERLAP, now, SERVER_THEN, five_minutes, OVERLAP) is not None
    assert watermarks.server_bound(watermark - OVERLAP, now, SERVER_THEN, five_minutes, OVERLAP, lag) is None
    # put back 2 h (both clocks): the bound still moves, translated to the database's clock by the lead
    start = watermarks.server_bound(watermark - OVERLAP, now - timedelta(hours=2), SERVER_THEN, five_minutes,
                                    OVERLAP, lag)
    assert start == SERVER_THEN - timedelta(hours=2) + lag + watermarks.DATE_RESOLUTION - OVERLAP


def test_the_lead_is_learned_only_from_stamps_newer_than_the_watermark():
    date = datetime(2026, 11, 24, 2, 0, 30, tzinfo=timezone.utc)
    docs = [replace(make_doc(number=str(n)), fields={"LastModifiedDateTime": stamp})
            for n, stamp in enumerate(("2026-11-24T13:30:00.000+10:00", "2026-11-24T12:01:00.000+10:00"))]
    assert watermarks.stamp_lead(docs, date, None) == timedelta(hours=1, minutes=29, seconds=30)
    assert watermarks.stamp_lead(docs[1:], date, None) == timedelta(seconds=30)
    # stamps the last pass already read (a clock that ran ahead and was put right wrote them) teach nothing
    assert watermarks.stamp_lead(docs, date, "2026-11-24T13:30:00.000+10:00") is None
    assert watermarks.stamp_lead(docs[1:], date, "2026-11-24T03:30:00.000+00:00") is None
    assert watermarks.stamp_lead(docs, None, None) is None


def test_date_steps_back_only_beyond_its_resolution():
    then = SERVER_THEN
    assert not watermarks.stepped_back(then + timedelta(seconds=59), then, timedelta(seconds=60))
    assert not watermarks.stepped_back(then + timedelta(seconds=58), then, timedelta(seconds=60))
    assert watermarks.stepped_back(then + timedelta(seconds=57), then, timedelta(seconds=60))
    assert not watermarks.stepped_back(None, then, timedelta(0)) and not watermarks.stepped_back(then, None,
                                                                                              timedelta(0))
