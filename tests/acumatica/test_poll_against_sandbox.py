"""The poller through the real client against the sandbox's own clock: random skews and tenant offsets, random
edits between polls. Every change after the first pass is queued by the next poll, and no change twice."""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

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


@contextmanager
def polling(client, table_name: str, lambda_now: list[datetime]) -> Iterator[tuple[Callable[[], set[str]], ListQueue,
                                                                                   DynamoStore]]:
    """A table of its own (moto) and a poll at the Lambda's time ``lambda_now[0]`` that returns the external ids it
    queued."""
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName=table_name, BillingMode="PAY_PER_REQUEST", **table_definition())
        store, queue = DynamoStore(table, clock=Clock()), ListQueue()

        def poll() -> set[str]:
            before = len(queue.sent)
            poll_entity("Bill", documents=client, store=store, queue=queue, options=PollOptions(page_size=3),
                        now=lambda: lambda_now[0], seconds_left=lambda: 300.0, correlation_id="c")
            return {m.external_id for m in queue.sent[before:]}

        yield poll, queue, store


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
    with polling(client, f"poll-{run}", lambda_now) as (poll, queue, _):
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


jumps = st.timedeltas(min_value=-timedelta(hours=12), max_value=timedelta(hours=12)) | st.just(timedelta(0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(skew=st.timedeltas(min_value=-timedelta(days=1), max_value=timedelta(days=1)),
       offset_quarters=st.integers(-12 * 4, 14 * 4),
       rounds=st.lists(st.tuples(st.integers(1, 180), st.lists(st.integers(0, 4), max_size=3), jumps,
                                 st.integers(-4, 4), st.lists(st.integers(0, 4), max_size=3)),
                       min_size=1, max_size=4))
def test_no_edit_after_its_previous_poll_is_missed_whatever_acumaticas_clock_jumps(sandbox, client, skew,
                                                                                   offset_quarters, rounds):
    """Acumatica's clock jumps (forward, back, corrected) and its offset changes (DST) between polls; the Lambda's
    clock runs evenly, and so does Acumatica's between jumps. Every document edited since its previous poll, before
    or after the jump, is queued by the next poll."""
    run = next(_runs)
    for record in sandbox.documents("Bill"):
        sandbox.delete_document("Bill", (record["Type"], record["ReferenceNbr"]))
    lambda_now = [datetime.now(timezone.utc)]
    started, jumped = lambda_now[0], [timedelta(0)]

    def set_sandbox_clock(**render) -> None:  # Acumatica's clock: the Lambda's elapsed time, its skew, its jumps
        sandbox.set_clock(skew=skew + (lambda_now[0] - started) + jumped[0], **render)

    set_sandbox_clock(render_offset=timedelta(minutes=15 * offset_quarters))
    numbers = [sandbox.add_document("Bill", ReferenceNbr=f"J{run:03d}{n}", Hold=True)["ReferenceNbr"]
               for n in range(5)]
    with polling(client, f"jump-{run}", lambda_now) as (poll, queue, store):
        def edit(indexes: list[int]) -> set[str]:
            for n in indexes:
                sandbox.update_document("Bill", ("Bill", numbers[n]), Description=f"edit {run} {n} {len(queue.sent)}")
            return {f"Bill:Bill:{numbers[n]}" for n in indexes}

        poll()
        for minutes, before_jump, jump, offset_change, after_jump in rounds:
            lambda_now[0] += timedelta(minutes=minutes)
            set_sandbox_clock()
            changed = edit(before_jump)
            jumped[0] += jump
            set_sandbox_clock(render_offset=timedelta(minutes=15 * max(-48, min(56, offset_quarters + offset_change))))
            changed |= edit(after_jump)
            missed = changed - poll()
            assert not missed, f"missed {sorted(missed)} after a jump of {jump} (cursor {store.get_cursor('Bill')})"
