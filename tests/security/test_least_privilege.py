"""Least privilege at the webhook and what the worker trusts: the internet-facing function writes no document's
items (the worker records "queued", once per message, whatever the retries), the worker never acts on a document
carried by a message the webhook queued, "poll now" runs in the poller (never a second writer of watermarks), and
the HTTP API logs every request with its source IP under a throttle of each route's own."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from cfnlint.decode import decode

from connector.errors import TransientError
from connector.model import POLL_NOW_GROUP, WorkMessage, document_to_json
from connector.pollnow import LambdaPollTrigger, requested_entities
from connector.sync import SyncContext, fresh_carried_document
from connector.worker import Received, WorkRunner
from tests.conftest import ROOT
from tests.fakes import FakeAcumatica, FakeJira, make_doc


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    body, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return body


class Store:
    """The part of the state store the runner touches: audit records by sort key, as DynamoDB keeps them."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}

    def audit_queued(self, messages, *, at=None, record_id=None) -> None:
        from connector.audit import queued_audit_items

        for item in queued_audit_items(messages, now=at, retention_seconds=86400, record_id=record_id):
            self.items[(item["PK"], item["SK"])] = item

    def audit(self, *args, **kwargs) -> None:
        pass


class Sqs:
    def send_message(self, **kwargs) -> None:
        pass


def runner(store: Store, perform) -> WorkRunner:
    return WorkRunner(perform=perform, store=store, sqs=Sqs(), queue_url="q", dead_letter_url="dlq")


def received(message: WorkMessage, attempt: int) -> Received:
    return Received(message_id="m-1", receipt_handle=f"h-{attempt}", body=message.to_json(), group_id="g",
                    receive_count=attempt, sent_at=1_795_000_000.0)


def test_work_the_webhook_queued_gets_one_queued_record_from_the_worker_whatever_the_retries() -> None:
    store, message = Store(), WorkMessage(kind="resolve", external_id="Bill:Bill:000123", dedupe_id="resolve:1:2",
                                          correlation_id="c", source="jira", issue_key="AP-1", reason="AP-1 moved")
    attempts = iter([TransientError("Jira 503"), "done"])

    def perform(message, attempt):
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(TransientError):
        runner(store, perform).run(received(message, 1))
    assert runner(store, perform).run(received(message, 2)).outcome == "done"
    (record,) = store.items.values()
    assert record["event"] == "queued" and record["at"] == datetime.fromtimestamp(1_795_000_000, timezone.utc).isoformat()
    assert record["details"]["source"] == "jira"


def test_work_the_poller_queued_is_not_recorded_again_by_the_worker() -> None:
    store = Store()
    message = WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id="d", correlation_id="c")
    runner(store, lambda m, a: "updated").run(received(message, 1))
    assert store.items == {}


def test_a_document_carried_by_a_message_the_webhook_queued_is_never_trusted() -> None:
    doc = replace(make_doc(), read_at=datetime.now(timezone.utc))
    ctx = SyncContext(documents=FakeAcumatica(doc), tracker=FakeJira(), store=None, acumatica_url="https://a",
                      owner_map={}, labels=(), cleared_status="", clock=lambda: doc.read_at.timestamp(),
                      fresh_for_seconds=300)
    carried = {"kind": "sync", "external_id": doc.key.external_id, "dedupe_id": "d", "correlation_id": "c",
               "document": document_to_json(doc)}
    assert fresh_carried_document(WorkMessage(**carried, source="poll"), ctx, attempt=1) == doc
    for source in ("push", "jira", "sweep"):
        assert fresh_carried_document(WorkMessage(**carried, source=source), ctx, attempt=1) is None


class Lambda:
    def __init__(self, status: int = 202) -> None:
        self.calls: list[dict] = []
        self.status = status

    def invoke(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        return {"StatusCode": self.status}


def test_a_poll_message_asks_the_poller_asynchronously_and_never_polls_in_the_worker() -> None:
    client = Lambda()
    message = WorkMessage(kind="poll", external_id=POLL_NOW_GROUP, dedupe_id="poll:Bill:1", correlation_id="c",
                          source="push", entities=["Bill"], reason="3000 rows")
    assert LambdaPollTrigger(client, "stack-PollerFunction").request(message) == "requested"
    (call,) = client.calls
    assert call["FunctionName"] == "stack-PollerFunction" and call["InvocationType"] == "Event"
    assert json.loads(call["Payload"])["entities"] == ["Bill"]
    with pytest.raises(TransientError):
        LambdaPollTrigger(Lambda(status=500), "p").request(message)


def test_a_poll_now_event_reads_only_the_configured_entities_it_names() -> None:
    configured = ("Bill", "PurchaseOrder", "Check")
    assert requested_entities({"job": "poll"}, configured) == configured
    assert requested_entities({"job": "poll-now", "entities": ["Check", "Invoice"]}, configured) == ("Check",)
    assert requested_entities({"job": "poll-now", "entities": "Bill"}, configured) == ()


def test_only_the_worker_may_ask_the_poller_and_the_poller_keeps_its_single_writer(template) -> None:
    resources = template["Resources"]
    assert resources["PollerFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1
    invokers = [name for name, resource in resources.items()
                if resource.get("Type") == "AWS::Serverless::Function"
                and "lambda:InvokeFunction" in json.dumps(resource["Properties"].get("Policies", []))]
    assert invokers == ["WorkerFunction"]
    assert resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]["POLLER_FUNCTION_NAME"] == {
        "Ref": "PollerFunction"}


def test_the_http_api_logs_each_request_with_its_source_ip_and_throttles_each_route(template) -> None:
    api = template["Resources"]["ConnectorHttpApi"]["Properties"]
    log = json.loads(api["AccessLogSettings"]["Format"])
    assert log["sourceIp"] == "$context.identity.sourceIp" and log["status"] == "$context.status"
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    routes = api["RouteSettings"]
    assert set(routes) == {"POST /jira/webhook", "POST /acumatica/push"}
    assert all(limits["ThrottlingRateLimit"] > 0 and limits["ThrottlingBurstLimit"] > 0 for limits in routes.values())
    assert routes["POST /acumatica/push"]["ThrottlingRateLimit"] < routes["POST /jira/webhook"]["ThrottlingRateLimit"]


def test_every_checkov_skip_is_justified_where_it_applies(template) -> None:
    """`make lint` and `make test` run checkov clean; what it reports and is accepted is skipped on the resource it
    concerns, with the reason (an accepted risk or a false positive) written beside it, never globally."""
    skipped = {}
    for name, resource in template["Resources"].items():
        for skip in (resource.get("Metadata", {}).get("checkov", {}) or {}).get("skip", []):
            assert skip["comment"].startswith(("Accepted:", "False positive:")), (name, skip["id"])
            assert len(skip["comment"]) > 80, (name, skip["id"])
            skipped.setdefault(skip["id"], []).append(name)
    makefile = (ROOT / "Makefile").read_text()
    assert "--skip-check" not in makefile and "$(CHECKOV_RUN)" in makefile.split("lint:")[1].split("\n\n")[0]
    assert skipped["CKV_AWS_27"] == ["WorkQueue", "DeadLetterQueue"]
    assert template["Resources"]["WorkQueue"]["Properties"]["SqsManagedSseEnabled"] is True  # why 27 is false
