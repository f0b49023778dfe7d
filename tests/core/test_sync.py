"""Exception flow: exactly one issue per document, kept current, under repeats, lag, crashes and replays."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from connector.errors import NotFoundError, TransientError, ValidationError
from connector.model import WorkMessage
from connector.sync import PollOptions, SyncContext, poll_entity, sync_document
from tests.fakes import FakeAcumatica, FakeJira, make_doc


class ListQueue:
    def __init__(self):
        self.sent: list[WorkMessage] = []

    def send(self, messages):
        self.sent.extend(messages)


def context(acu, jira, store, clock, cleared_status=""):
    return SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                       owner_map={"V000001": "acct-1"}, labels=("acumatica",), cleared_status=cleared_status,
                       clock=clock)


def sync_msg(external_id="Bill:Bill:000123", dedupe="d1"):
    return WorkMessage(kind="sync", external_id=external_id, dedupe_id=dedupe, correlation_id="corr-1")


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def poll(acu, store, queue, seconds_left=lambda: 300.0, page_size=500):
    return poll_entity("Bill", documents=acu, store=store, queue=queue,
                       options=PollOptions(page_size=page_size, resume_margin=0), now=lambda: NOW,
                       seconds_left=seconds_left, correlation_id="corr-poll")


def test_exception_document_creates_one_issue_with_reference_vendor_and_amount(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    assert sync_document(sync_msg(), context(acu, jira, store, clock)) == "created"
    (issue,) = jira.issues.values()
    assert "000123" in issue["summary"] and "V000001" in issue["summary"] and "1,250.00 USD" in issue["summary"]
    assert issue["external_id"] == "Bill:Bill:000123" and issue["assignee"] == "acct-1"
    assert issue["description"]["type"] == "doc"


def test_duplicate_delivery_makes_no_second_issue_and_no_jira_call(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    calls = len(jira.calls)
    assert sync_document(sync_msg(), ctx) == "unchanged"
    assert len(jira.issues) == 1 and len(jira.calls) == calls


def test_crash_after_jira_created_the_issue_adopts_it_on_retry(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    jira.crash_after_create = True
    ctx = context(acu, jira, store, clock)
    with pytest.raises(RuntimeError):
        sync_document(sync_msg(), ctx)
    # Retry before search caught up and before the claim may be retaken: wait, do not create.
    with pytest.raises(TransientError):
        sync_document(sync_msg(), ctx)
    assert len(jira.issues) == 1
    jira.settle()
    assert sync_document(sync_msg(), ctx) == "adopted"
    assert len(jira.issues) == 1


def test_crashed_claim_is_retaken_after_its_window_and_search_lag_cannot_duplicate(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    jira.crash_after_create = True
    ctx = context(acu, jira, store, clock)
    with pytest.raises(RuntimeError):
        sync_document(sync_msg(), ctx)
    clock.advance(1000)
    jira.settle()
    assert sync_document(sync_msg(), ctx) == "adopted"
    assert len(jira.issues) == 1


def test_lost_dynamodb_state_is_recovered_from_jira_by_external_id(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    jira.settle()
    store._table.delete_item(Key={"PK": "DOC#Bill#Bill#000123", "SK": "STATE"})
    store._table.delete_item(Key={"PK": "DOC#Bill#Bill#000123", "SK": "CLAIM#CREATE"})
    acu.put(make_doc(status="Pending Approval"))
    assert sync_document(sync_msg(dedupe="d2"), ctx) == "adopted"
    assert len(jira.issues) == 1


def test_state_change_comments_old_and_new_and_updates_the_summary(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    acu.put(make_doc(status="Pending Approval", hold=False))
    assert sync_document(sync_msg(dedupe="d2"), ctx) == "updated"
    (key,) = jira.issues
    text = str(jira.comments[key][-1])
    assert "On Hold" in text and "Pending Approval" in text
    assert "approval" in jira.issues[key]["summary"].lower()


def test_cleared_exception_comments_and_transitions_when_configured(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock, cleared_status="Done")
    sync_document(sync_msg(), ctx)
    acu.put(make_doc(status="Open", hold=False))
    assert sync_document(sync_msg(dedupe="d2"), ctx) == "cleared"
    (key,) = jira.issues
    assert jira.issues[key]["status"] == "Done"
    assert "no longer an exception" in str(jira.comments[key][-1])


def test_an_exception_back_after_a_resolution_reopens_the_issue(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    (key,) = jira.issues
    acu.put(make_doc(status="Open", hold=False))
    sync_document(sync_msg(dedupe="d2"), ctx)
    jira.move(key, "Done")  # a person resolved it meanwhile
    acu.put(make_doc(status="On Hold", hold=True, amount="1300.00"))
    assert sync_document(sync_msg(dedupe="d3"), ctx) == "reopened"
    assert jira.statuses[jira.issues[key]["status"]] == "new"
    assert "needs attention again" in str(jira.comments[key][-1])


def test_an_exception_back_on_an_issue_nobody_resolved_leaves_its_status_alone(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    (key,) = jira.issues
    jira.move(key, "In Progress")
    acu.put(make_doc(status="Open", hold=False))
    sync_document(sync_msg(dedupe="d2"), ctx)
    acu.put(make_doc(status="On Hold", hold=True, amount="1300.00"))
    assert sync_document(sync_msg(dedupe="d3"), ctx) == "reopened"
    assert jira.issues[key]["status"] == "In Progress"


def test_healthy_document_never_creates_an_issue(store, clock):
    acu, jira = FakeAcumatica(make_doc(status="Open", hold=False)), FakeJira()
    assert sync_document(sync_msg(), context(acu, jira, store, clock)) == "healthy"
    assert jira.issues == {}


def test_unknown_document_is_a_logged_skip(store, clock):
    acu, jira = FakeAcumatica(), FakeJira()
    assert sync_document(sync_msg(), context(acu, jira, store, clock)) == "skipped"
    assert store.audit_trail(make_doc().key)[-1]["outcome"] == "skipped"


def test_every_step_is_audited_with_the_correlation_id(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    sync_document(sync_msg(), context(acu, jira, store, clock))
    trail = store.audit_trail(make_doc().key)
    assert trail[-1]["event"] == "issue" and trail[-1]["outcome"] == "created"
    assert all(record["correlation_id"] == "corr-1" for record in trail)


def test_poll_enqueues_exceptions_only_and_a_repoll_after_sync_enqueues_nothing(store, clock):
    docs = [make_doc(number=f"{n:06d}", status="On Hold" if n % 2 else "Open", hold=bool(n % 2))
            for n in range(1, 21)]
    acu, jira, queue = FakeAcumatica(*docs), FakeJira(), ListQueue()
    report = poll(acu, store, queue)
    assert report.completed and report.enqueued == 10 and report.healthy == 10
    ctx = context(acu, jira, store, clock)
    for message in queue.sent:
        sync_document(message, ctx)
    assert len(jira.issues) == 10
    again, calls = ListQueue(), len(jira.calls)
    store.put_cursor("Bill", replace(store.get_cursor("Bill"), watermark=None))  # a lost watermark re-reads all
    assert poll(acu, store, again).enqueued == 0
    assert again.sent == [] and len(jira.calls) == calls


def test_document_that_became_healthy_with_an_open_issue_is_enqueued(store, clock):
    acu, jira, queue = FakeAcumatica(make_doc()), FakeJira(), ListQueue()
    poll(acu, store, queue)
    sync_document(queue.sent[0], context(acu, jira, store, clock))
    acu.put(make_doc(status="Open", hold=False))
    store.put_cursor("Bill", replace(store.get_cursor("Bill"), watermark=None))
    later = ListQueue()
    poll(acu, store, later)
    assert [m.external_id for m in later.sent] == ["Bill:Bill:000123"]


def test_poll_stops_before_the_time_limit_and_resumes_without_skipping(store, clock):
    docs = [make_doc(number=f"{n:06d}", modified=NOW - timedelta(days=3, minutes=n)) for n in range(1, 101)]
    acu, queue = FakeAcumatica(*docs), ListQueue()
    budget = iter([300.0, 290.0, 10.0] + [300.0] * 100)
    first = poll(acu, store, queue, seconds_left=lambda: next(budget), page_size=10)
    assert not first.completed and store.get_cursor("Bill").skip == 20
    second = poll(acu, store, queue, page_size=10)
    assert second.completed
    assert {m.external_id for m in queue.sent} == {d.key.external_id for d in docs}
    cursor = store.get_cursor("Bill")
    newest = NOW - timedelta(days=3, minutes=1)  # wherever it sat, the resumed pass kept the running maximum
    assert cursor.watermark == newest and cursor.pass_from is None


def test_watermark_is_the_greatest_stamp_read_minus_overlap_on_the_next_pass_not_the_lambda_clock(store, clock):
    newest = NOW - timedelta(days=2, minutes=5)  # Acumatica's clock two days behind the Lambda's
    acu = FakeAcumatica(make_doc(modified=newest), make_doc(number="000124", modified=newest - timedelta(hours=1)))
    queue = ListQueue()
    poll(acu, store, queue)
    seen = []
    acu.changed_pages = lambda entity, since, **kw: (seen.append(since), iter(()))[1]
    poll(acu, store, queue)
    assert seen == [newest - timedelta(minutes=10)]


def test_refused_assignee_still_creates_the_issue_unassigned(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    original = jira.create_issue

    def refuse_assignee(draft):
        if draft.assignee_account_id:
            raise ValidationError("Field errors", {"assignee": "Specified user does not exist"})
        return original(draft)

    jira.create_issue = refuse_assignee
    assert sync_document(sync_msg(), context(acu, jira, store, clock)) == "created"
    (issue,) = jira.issues.values()
    assert issue["assignee"] is None
    assert any(r["outcome"] == "assignee-refused" for r in store.audit_trail(make_doc().key))


def test_updates_never_overwrite_assignee_or_labels_people_changed(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    (key,) = jira.issues
    jira.issues[key]["assignee"], jira.issues[key]["labels"] = "someone-else", ["triaged"]
    acu.put(make_doc(status="Pending Approval", hold=False))
    sync_document(sync_msg(dedupe="d2"), ctx)
    assert jira.issues[key]["assignee"] == "someone-else" and jira.issues[key]["labels"] == ["triaged"]


def test_first_poll_finds_documents_stuck_long_before_the_connector_was_deployed(store, clock):
    ancient = make_doc(number="000001", modified=datetime(2024, 3, 20, tzinfo=timezone.utc))
    queue = ListQueue()
    poll(FakeAcumatica(ancient), store, queue)
    assert [m.external_id for m in queue.sent] == ["Bill:Bill:000001"]


def test_queuing_is_audited_with_the_reason_and_the_poll_correlation_id(store, clock):
    acu, queue = FakeAcumatica(make_doc()), ListQueue()
    poll(acu, store, queue)
    (record,) = store.audit_trail(make_doc().key)
    assert (record["event"], record["outcome"], record["correlation_id"]) == ("queued", "sync", "corr-poll")
    assert record["reason"] == "On hold"


def test_a_weekly_full_pass_finds_a_document_the_watermark_passed_by(store, clock):
    missed = make_doc(number="000777", modified=NOW - timedelta(days=3))  # e.g. shifted past a resume point
    acu = FakeAcumatica(make_doc(number="000001", status="Open", hold=False, modified=NOW - timedelta(days=2)))
    queue, when = ListQueue(), [NOW - timedelta(days=2)]
    options = PollOptions(page_size=100, full_pass_every=timedelta(days=7))

    def run():
        return poll_entity("Bill", documents=acu, store=store, queue=queue, options=options, now=lambda: when[0],
                           seconds_left=lambda: 300.0, correlation_id="c")

    run()  # first pass: one healthy bill sets the watermark
    acu.put(missed)  # appears with a timestamp older than the watermark
    when[0] = NOW
    run()
    assert queue.sent == []
    when[0] = NOW + timedelta(days=6)
    run()
    assert [m.external_id for m in queue.sent] == ["Bill:Bill:000777"]
    assert store.get_cursor("Bill").full_pass_at == NOW + timedelta(days=6)


def test_a_deleted_document_with_an_open_issue_gets_one_comment_and_is_cleared(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock, cleared_status="Done")
    sync_document(sync_msg(), ctx)
    (key,) = jira.issues
    del acu.docs[make_doc().key]  # deleted in Acumatica: the re-read answers 404

    assert sync_document(sync_msg(dedupe="d2"), ctx) == "deleted"
    assert sync_document(sync_msg(dedupe="d3"), ctx) == "skipped"  # a replay says nothing more
    (comment,) = jira.comments[key]
    assert "no longer exists in Acumatica" in str(comment)
    assert jira.issues[key]["status"] == "Done"
    state = store.get_state(make_doc().key)
    assert state.open is False and state.issue_key == key
    assert "deleted" in [r["outcome"] for r in store.audit_trail(make_doc().key)]


class AnswersNotFoundByKeys(FakeAcumatica):
    """An instance whose reads by key answer 404 while the document is still there: an endpoint version it stopped
    serving, or a proxy in front of it. ``lists``: what its list requests do (answer, or fail)."""

    def __init__(self, *docs, lists=None):
        super().__init__(*docs)
        self.lists = lists

    def get(self, key):
        return None

    def existing(self, keys):
        if self.lists is not None:
            raise self.lists
        return super().existing(keys)


@pytest.mark.parametrize("lists", [None, NotFoundError("Acumatica answered 404 to GET Bill list by keys"),
                                   TransientError("Acumatica answered 503")], ids=["still listed", "list 404",
                                                                                    "list 503"])
def test_a_404_by_key_alone_never_tells_an_open_issue_its_document_was_deleted(store, clock, lists):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock, cleared_status="Done")
    sync_document(sync_msg(), ctx)
    (key,) = jira.issues
    confused = replace(ctx, documents=AnswersNotFoundByKeys(make_doc(), lists=lists))
    if lists is None:
        assert sync_document(sync_msg(dedupe="d2"), confused) == "skipped"
    else:  # the lookup failed: the message comes back (or goes to the DLQ with the reason), nothing is concluded
        with pytest.raises(type(lists)):
            sync_document(sync_msg(dedupe="d2"), confused)
    assert jira.comments[key] == [] and jira.issues[key]["status"] != "Done"
    assert store.get_state(make_doc().key).open is True
    assert sync_document(sync_msg(dedupe="d3"), ctx) == "unchanged"  # the instance answers again: nothing to undo


def test_a_document_recreated_after_its_deletion_reopens_its_issue(store, clock):
    acu, jira = FakeAcumatica(make_doc()), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(sync_msg(), ctx)
    del acu.docs[make_doc().key]
    sync_document(sync_msg(dedupe="d2"), ctx)
    acu.put(make_doc())
    assert sync_document(sync_msg(dedupe="d3"), ctx) == "reopened"
    assert len(jira.issues) == 1
