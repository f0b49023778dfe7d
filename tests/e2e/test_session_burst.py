"""One Acumatica session per OAuth grant, through the real handlers: eight bills resolved at once while a poll runs.

Every container of the stack shares the grant, so while one action runs every other request of the session is
refused. The workers run as many at once as the template allows (``WorkerMaxConcurrency``), each action runs for a
while (its status URL answers 202 meanwhile), and a poll pages through Acumatica at the same time. Every bill must be
released exactly once, and no decision may end in the DLQ.

The resolutions arrive one by one, as webhooks do, so Lambda's poller hands each to whichever environment is free: a
batch of one each. Queued all at once they would be one batch of eight, worked one after another by one environment,
and no two actions would ever meet in the session: the lease would go untested.
"""

from __future__ import annotations

import threading

import pytest

from connector_local.stack import LocalStack
from connector.session import is_session_busy
from tests.e2e.conftest import Harness

BILLS = [f"80000{n}" for n in range(8)]


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True, worker_concurrency=None) as running:
        yield running


def test_eight_bills_resolved_at_once_while_a_poll_runs_are_each_released_once_and_none_reaches_the_dlq(stack):
    harness = Harness(stack)
    for number in BILLS:
        stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor="V800", Amount=20, Balance=20,
                                     Hold=True)
    for n in range(40):  # healthy bills the poll pages through while the actions run
        stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=f"81{n:04d}", Vendor="V801", Hold=False)
    harness.poll()
    issues = [harness.issues(f"Bill:Bill:{number}")[0]["key"] for number in BILLS]
    stack.acumatica.long_operation_seconds = 0.4  # from now on each action holds the session for a while

    stack.pump.batch_size = 1  # each resolution is its own invocation: up to WorkerMaxConcurrency act at once
    for key in issues:  # eight people resolve at once; each delivery is queued as it arrives
        stack.jira.resolve_issue(key, "Done")
    polling = threading.Thread(target=lambda: [stack.tick("PollerFunction") for _ in range(3)])
    polling.start()
    burst = stack.drain()
    polling.join()
    stack.drain()

    for number in BILLS:
        assert stack.acumatica.document("Bill", ("Bill", number))["Status"] == "Open", number
        assert [e[3] for e in stack.acumatica.action_log if e[1] == ("Bill", number)] == ["completed"], number
    assert harness.depth("DeadLetterQueueUrl") == 0
    assert burst.peak_concurrency >= 2  # the actions did run in two environments at once
    refused_actions = [r for r in stack.acumatica.requests_log
                       if r.method == "POST" and is_session_busy(r.status, r.response)]
    assert refused_actions == []  # the session lease made the actions take turns
    for key in issues:
        assert any("Acumatica updated" in str(comment["body"]) for comment in stack.jira.comments(key)), key
