"""A claim is held only across a call whose outcome is uncertain.

A failure before the create (search 5xx, token failure) or a definite refusal of it (400, a 429 after its retries)
created nothing, so the next attempt must create at once, not answer "in flight" for 15 minutes. Only a create that
may have happened (timeout after sending, a 5xx answer) keeps the claim, and then never duplicates.
"""

from __future__ import annotations

import pytest
import responses

from connector.errors import AuthenticationError, TransientError, UncertainOutcome, ValidationError
from connector.jira import JiraClient
from connector.model import WorkMessage
from connector.ports import IssueDraft
from connector.resolve import ResolveContext, resolve_document
from connector.sync import CREATE_CLAIM, SyncContext, sync_document
from tests.fakes import FakeAcumatica, FakeJira, make_doc, recorded
from tests.faults import Faults

QUICK_REDELIVERY = 2.0  # seconds: far inside every retake window


def sync_ctx(acu, jira, store, clock):
    return SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                       owner_map={}, labels=("acumatica",), cleared_status="", clock=clock)


def msg():
    return WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id="d1", correlation_id="c1")


def search_503():
    return TransientError("Jira POST /search/jql answered 503", retry_after=1.0)


@pytest.mark.parametrize("failure", [
    search_503,
    lambda: TransientError("jira token refresh is held by another worker; try again shortly"),
    lambda: AuthenticationError("Jira GET /search/jql answered 403"),
], ids=["search-503", "token-busy", "search-403"])
def test_a_failure_before_the_create_releases_the_claim_at_once(store, clock, failure):
    acu, jira = FakeAcumatica(make_doc()), Faults(FakeJira())
    jira.fail("find_by_external_id", failure)
    ctx = sync_ctx(acu, jira, store, clock)
    with pytest.raises(Exception):
        sync_document(msg(), ctx)
    assert store.get_claim(make_doc().key, CREATE_CLAIM).state == "failed"
    clock.advance(QUICK_REDELIVERY)
    assert sync_document(msg(), ctx) == "created"
    assert len(jira.issues) == 1


@pytest.mark.parametrize("refusal", [
    lambda: TransientError("Jira POST /issue answered 429 (rate limited)", retry_after=5.0),
    lambda: ValidationError("Jira POST /issue answered 400: customfield_10050: unknown field", {"x": "y"}),
], ids=["429-after-retries", "400"])
def test_a_definite_refusal_of_the_create_releases_the_claim_and_a_replay_after_the_fix_creates(store, clock,
                                                                                                 refusal):
    acu, jira = FakeAcumatica(make_doc()), Faults(FakeJira())
    jira.fail("create_issue", refusal)
    ctx = sync_ctx(acu, jira, store, clock)
    with pytest.raises((TransientError, ValidationError)):
        sync_document(msg(), ctx)
    assert jira.issues == {}
    clock.advance(QUICK_REDELIVERY)  # the cause is fixed; the DLQ replay comes right after
    assert sync_document(msg(), ctx) == "created"
    assert len(jira.issues) == 1


def test_a_create_that_timed_out_after_sending_keeps_the_claim_and_never_duplicates(store, clock):
    acu, fake = FakeAcumatica(make_doc()), FakeJira()
    jira = Faults(fake).fail("create_issue", lambda: UncertainOutcome("Jira POST /issue got no answer"), after=True)
    ctx = sync_ctx(acu, jira, store, clock)
    with pytest.raises(UncertainOutcome):
        sync_document(msg(), ctx)
    for _ in range(5):  # quick redeliveries while search has not caught up: wait, never create
        clock.advance(QUICK_REDELIVERY)
        with pytest.raises(TransientError, match="in flight"):
            sync_document(msg(), ctx)
    fake.settle()
    assert sync_document(msg(), ctx) == "adopted"
    assert len(fake.issues) == 1


def test_the_search_failing_on_a_retaken_claim_gives_it_back_without_duplicating(store, clock):
    acu, fake = FakeAcumatica(make_doc()), FakeJira()
    jira = Faults(fake).fail("create_issue", lambda: UncertainOutcome("lost"), after=True)
    ctx = sync_ctx(acu, jira, store, clock)
    with pytest.raises(UncertainOutcome):
        sync_document(msg(), ctx)
    fake.settle()
    clock.advance(901)
    jira.fail("find_by_external_id", search_503)
    with pytest.raises(TransientError):
        sync_document(msg(), ctx)
    clock.advance(QUICK_REDELIVERY)
    assert sync_document(msg(), ctx) == "adopted"
    assert len(fake.issues) == 1


# --- the HTTP layer tells "refused" from "may have happened" -------------------------------------------------------


class StaticTokens:
    def access_token(self) -> str:
        return "tok"

    def invalidate(self, token: str) -> None:
        pass


def jira_client(session=None):
    from connector.http import make_session

    return JiraClient(api_url="https://api.example.test", cloud_id="c1", project_key="AP", tokens=StaticTokens(),
                      session=session or make_session(total=0))


ISSUE_URL = "https://api.example.test/ex/jira/c1/rest/api/3/issue"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@responses.activate
def test_a_5xx_answer_to_a_create_is_uncertain(status):
    responses.post(ISSUE_URL, status=status, json={"errorMessages": ["upstream"]})
    with pytest.raises(UncertainOutcome):
        jira_client().create_issue(IssueDraft(summary="s", description={}, external_id="Bill:Bill:1"))


@pytest.mark.parametrize("status", [400, 409, 429])
@responses.activate
def test_a_refused_create_is_definite(status):
    responses.post(ISSUE_URL, status=status, json={"errorMessages": ["no"]}, headers={"Retry-After": "3"})
    with pytest.raises(Exception) as caught:
        jira_client().create_issue(IssueDraft(summary="s", description={}, external_id="Bill:Bill:1"))
    assert not isinstance(caught.value, UncertainOutcome)


# --- action claims ----------------------------------------------------------------------------------------------


def test_an_action_refused_with_429_releases_its_claim_and_the_retry_acts_once(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    fake_acu, jira = FakeAcumatica(doc), FakeJira()
    acu = Faults(fake_acu).fail("invoke_action", lambda: TransientError("Acumatica answered 429", retry_after=2.0))
    recorded(doc, store, jira)  # the connector's own issue for the bill, then a person's decision
    jira.move("AP-1", "Done")
    ctx = ResolveContext(documents=acu, tracker=jira, store=store, approve_action="Approve", clock=clock)
    message = WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id="r1", correlation_id="c",
                          issue_key="AP-1")
    with pytest.raises(TransientError):
        resolve_document(message, ctx)
    clock.advance(QUICK_REDELIVERY)
    assert resolve_document(message, ctx) == "done"
    assert fake_acu.actions == [(doc.key.external_id, "ReleaseBill")]


# --- the update path comments once -------------------------------------------------------------------------------


def issue_then_change(store, clock, *, cleared_status=""):
    """A document with its issue, then changed so the next sync comments; returns the pieces for the scenario."""
    acu, fake = FakeAcumatica(make_doc()), FakeJira()
    jira = Faults(fake)
    ctx = SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                      owner_map={}, labels=("acumatica",), cleared_status=cleared_status, clock=clock)
    assert sync_document(msg(), ctx) == "created"
    (issue_key,) = fake.issues
    return acu, fake, jira, ctx, issue_key


def test_a_failure_after_the_comment_never_comments_twice(store, clock):
    acu, fake, jira, ctx, issue_key = issue_then_change(store, clock, cleared_status="Done")
    acu.put(make_doc(status="Open", hold=False))  # exception cleared: comment, then transition
    jira.fail("transition_to", lambda: TransientError("Jira POST /transitions answered 503"))
    with pytest.raises(TransientError):
        sync_document(msg(), ctx)
    clock.advance(QUICK_REDELIVERY)
    assert sync_document(msg(), ctx) == "cleared"
    assert len(fake.comments[issue_key]) == 1 and fake.issues[issue_key]["status"] == "Done"


def test_a_retaken_update_claim_remembers_its_comment(store, clock):
    acu, fake, jira, ctx, issue_key = issue_then_change(store, clock, cleared_status="Done")
    acu.put(make_doc(status="Open", hold=False))
    jira.fail("transition_to", lambda: RuntimeError("worker crashed after commenting"))
    with pytest.raises(RuntimeError):
        sync_document(msg(), ctx)
    clock.advance(601)  # the claim is retaken
    assert sync_document(msg(), ctx) == "cleared"
    assert len(fake.comments[issue_key]) == 1


@pytest.mark.parametrize("method, failure", [
    ("add_comment", lambda: TransientError("Jira POST /comment answered 429", retry_after=3.0)),
    ("update_issue", lambda: TransientError("Jira PUT /issue answered 503")),
], ids=["comment-429", "update-503-before-the-comment"])
def test_an_update_refused_before_anything_was_posted_is_retried_at_once(store, clock, method, failure):
    acu, fake, jira, ctx, issue_key = issue_then_change(store, clock)
    acu.put(make_doc(amount="1300.00"))  # still an exception, changed amount: update and comment
    jira.fail(method, failure)
    with pytest.raises(TransientError):
        sync_document(msg(), ctx)
    clock.advance(QUICK_REDELIVERY)
    assert sync_document(msg(), ctx) == "updated"
    assert len(fake.comments[issue_key]) == 1


def test_a_comment_that_may_have_been_posted_is_not_posted_again_quickly(store, clock):
    acu, fake, jira, ctx, issue_key = issue_then_change(store, clock)
    acu.put(make_doc(amount="1300.00"))
    jira.fail("add_comment", lambda: UncertainOutcome("Jira POST /comment got no answer"), after=True)
    with pytest.raises(UncertainOutcome):
        sync_document(msg(), ctx)
    clock.advance(QUICK_REDELIVERY)
    with pytest.raises(TransientError, match="in flight"):
        sync_document(msg(), ctx)
    assert len(fake.comments[issue_key]) == 1
