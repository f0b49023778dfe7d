"""The poller through the real client against the sandbox's own clock: random skews and tenant offsets, random
edits between polls. Every change after the first pass is queued by the next poll, and no change twice."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from connector.store import DynamoStore
from connector.sync import PollOptions, poll_entity
from tests.core.conftest import Clock, table_definition

_runs = itertools.count()


class ListQueue:
    def __init__(self):
        self.sent = []

    def send(self, messages):
        self.sent.extend(messages)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(skew=st.timedeltas(min_value=-timedelta(days=5), max_value=timedelta(days=5)),
       offset_quarters=st.integers(-12 * 4, 14 * 4),
       rounds=st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=4), min_size=1, max_size=3))
def test_changes_reach_the_queue_on_the_next_poll_whatever_the_sandbox_clock(sandbox, client, skew, offset_quarters,
                                                                            rounds):
    run = next(_runs)
    for record in sandbox.documents("Bill"):  # one tenant per example: an earlier example's clock is not this one's
        sandbox.delete_document("Bill", (record["Type"], record["ReferenceNbr"]))
    sandbox.set_clock(skew=skew, render_offset=timedelta(minutes=15 * offset_quarters))
    numbers = [sandbox.add_document("Bill", ReferenceNbr=f"R{run:03d}{n}", Hold=True)["ReferenceNbr"]
               for n in range(5)]
    lambda_now = [datetime.now(timezone.utc)]  # the connector's clock: the wall clock, not the sandbox's
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName=f"poll-{run}", BillingMode="PAY_PER_REQUEST", **table_definition())
        store, queue = DynamoStore(table, clock=Clock()), ListQueue()

        def poll() -> set[str]:
            before = len(queue.sent)
            poll_entity("Bill", documents=client, store=store, queue=queue, options=PollOptions(page_size=3),
                        now=lambda: lambda_now[0], seconds_left=lambda: 300.0, correlation_id="c")
            return {m.external_id for m in queue.sent[before:]}

        poll()
        amounts = {number: 100 for number in numbers}
        for edits in rounds:
            changed = set()
            for n in edits:
                amounts[numbers[n]] += 1
                sandbox.update_document("Bill", ("Bill", numbers[n]), Amount=amounts[numbers[n]],
                                        Balance=amounts[numbers[n]])
                changed.add(f"Bill:Bill:{numbers[n]}")
            lambda_now[0] += timedelta(minutes=5)
            assert changed <= poll()
        # Without a worker the poller may queue an unchanged state again, with the same dedupe id (SQS drops it).
        # So: exactly one distinct dedupe id per document state a poll could see (two edits of one document between
        # polls leave one state), none missing, none extra.
        assert len({m.dedupe_id for m in queue.sent}) == len(numbers) + sum(len(set(edits)) for edits in rounds)
