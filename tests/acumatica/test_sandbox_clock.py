"""The sandbox keeps its own clock and time zone, and lets records disappear between two page reads: the ways a real
tenant disagrees with the connector's assumptions. The client is held to them here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.acumatica import PAGE_REREAD
from connector.model import DocumentKey

BRISBANE = timedelta(hours=10)


def test_stamps_follow_the_sandbox_clock_and_are_rendered_in_the_tenant_offset(sandbox, client):
    sandbox.set_clock(skew=-timedelta(hours=7), render_offset=BRISBANE)
    record = sandbox.add_document("Bill")

    (page,) = client.changed_pages("Bill", datetime(2000, 1, 1, tzinfo=timezone.utc))
    (doc,) = page.documents

    rendered = doc.fields["LastModifiedDateTime"]
    assert rendered.endswith("+10:00") and doc.last_modified.utcoffset() == BRISBANE
    behind = datetime.now(timezone.utc) - doc.last_modified
    assert timedelta(hours=6, minutes=59) < behind < timedelta(hours=7, minutes=1)
    assert doc.last_modified == datetime.fromisoformat(record["LastModifiedDateTime"])  # the same instant



def test_every_answer_carries_the_sandbox_clock_in_its_date_header(sandbox, client):
    sandbox.set_clock(skew=-timedelta(hours=2), render_offset=BRISBANE)

    (page,) = client.changed_pages("Bill", datetime(2000, 1, 1, tzinfo=timezone.utc))

    behind = datetime.now(timezone.utc) - page.server_time
    assert timedelta(hours=1, minutes=59) < behind < timedelta(hours=2, minutes=1)
    assert page.server_time.utcoffset() == timedelta(0)  # HTTP dates are GMT, whatever the tenant renders

def test_filters_compare_datetimeoffsets_by_instant_whatever_offset_either_side_is_written_in(sandbox, client):
    sandbox.set_clock(render_offset=-timedelta(hours=5))
    moment = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    for minutes, number in ((-1, "000001"), (0, "000002"), (1, "000003")):
        sandbox.add_document("Bill", ReferenceNbr=number,
                             LastModifiedDateTime=(moment + timedelta(minutes=minutes)).isoformat())

    for since in (moment, moment.astimezone(timezone(BRISBANE)), moment.astimezone(timezone(-timedelta(hours=5)))):
        (page,) = client.changed_pages("Bill", since)
        assert sorted(d.key.number for d in page.documents) == ["000002", "000003"]


def test_a_tenant_rendering_without_an_offset_is_compared_in_its_own_zone(sandbox, client):
    sandbox.set_clock(render_offset=BRISBANE, render_naive=True)
    sandbox.add_document("Bill", LastModifiedDateTime="2026-06-01T12:00:00.000+00:00")

    (page,) = client.changed_pages("Bill", datetime(2026, 6, 1, 21, 59, tzinfo=timezone(BRISBANE)))
    (doc,) = page.documents
    assert doc.fields["LastModifiedDateTime"] == "2026-06-01T22:00:00.000"
    (later,) = client.changed_pages("Bill", datetime(2026, 6, 1, 12, 1, tzinfo=timezone.utc))
    assert later.documents == []


def test_a_deleted_document_answers_404_and_leaves_the_list(sandbox, client):
    record = sandbox.add_document("Bill")
    sandbox.delete_document("Bill", ("Bill", record["ReferenceNbr"]))

    assert client.get(DocumentKey("Bill", "Bill", record["ReferenceNbr"])) is None
    assert [d for p in client.changed_pages("Bill", datetime(2000, 1, 1, tzinfo=timezone.utc)) for d in p.documents] == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_deleting_records_between_page_reads_hides_no_surviving_record(sandbox, client, data):
    """Without ``$orderby`` a deletion shifts later records to lower offsets; the page re-read margin catches them."""
    for record in sandbox.documents("Bill"):
        sandbox.delete_document("Bill", (record["Type"], record["ReferenceNbr"]))
    sandbox.clear_list_hooks()
    page_size = 6
    numbers = [sandbox.add_document("Bill")["ReferenceNbr"] for _ in range(data.draw(st.integers(7, 30)))]
    reread = min(PAGE_REREAD, page_size // 2)
    # Drawn up front: the hook runs on the sandbox's server thread, where hypothesis cannot draw.
    plan = data.draw(st.lists(st.lists(st.integers(0, 10_000), max_size=reread), max_size=12))
    deleted: set[str] = set()

    def delete_between_pages(entity: str, skip: int) -> None:
        for pick in plan.pop(0) if plan else []:
            alive = [n for n in numbers if n not in deleted]
            if alive:
                number = alive[pick % len(alive)]
                sandbox.delete_document("Bill", ("Bill", number))
                deleted.add(number)

    sandbox.on_list(delete_between_pages)
    seen = {d.key.number for p in client.changed_pages("Bill", datetime(2000, 1, 1, tzinfo=timezone.utc),
                                                       page_size=page_size) for d in p.documents}
    sandbox.clear_list_hooks()

    assert set(numbers) - deleted <= seen
