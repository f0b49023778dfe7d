"""routing: what a month-end backlog costs against Acumatica's licence, with and without routing by purchase order.

A backlog of Bills (10% of them stuck on hold, each billing a purchase order from a pool whose owners are the
buyers) goes through the real PollerFunction and WorkerFunction on the embedded local stack, once per configuration,
each on a fresh stack: no routing table (no line is read at all), an ``OwnerMap`` naming the buyers (the poll reads
the lines of a page's new exception bills in one request and their orders' owners in another, and the messages carry
the buyer), and, measured in the same run against the same sandbox, the naive baselines: the one-read-per-bill way
(each new bill issue reads its lines, then its order, in the worker), with the ``OwnerMap`` and without one (as the
connector did before it asked whether anyone could be mapped).

Acumatica requests are counted by the Acumatica sandbox (its request log), by kind; DynamoDB requests by a botocore
hook on the session the handlers' clients come from, each write named by the item it writes.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from unittest import mock

from bench import Result

BUYERS = 10
GOAL_WITH_OWNER_MAP = 70
STRETCH_GOAL = 40


@dataclass(frozen=True)
class Config:
    documents: int = 5000
    """Bills and purchase orders together, as one backlog."""
    orders: int = 100
    """The purchase orders the bills reference (each shared by many bills)."""
    exception_every: int = 10
    """One bill in this many is on hold: 10% exceptions."""


DEFAULT = Config()
QUICK = Config(documents=1000, orders=40)

READERS = {
    "document state": "the poller (fingerprints, per page) and the worker: needed",
    "claim CREATE": "a retried or redriven creation, to settle a crash without a second issue: needed",
    "claim CREATE (finish)": "the same: marks the claim done with the issue key",
    "issue -> document": "the return flow (a resolution names an issue): needed",
    "recent issue ids": "every creation (reconcileIssues for search lag): needed",
    "audit record": "people, through `connector audit`: kept for them, read on demand",
    "audit record (queued, batched)": "people, through `connector audit`: 25 to a request",
    "watermark and checkpoint": "the next poll: needed",
}


def _item_kind(pk: str, sk: str, operation: str) -> str:
    if pk.startswith("DOC#"):
        if sk == "STATE":
            return "document state"
        if sk.startswith("CLAIM#"):
            return f"claim {sk.removeprefix('CLAIM#')}" + (" (finish)" if operation == "UpdateItem" else "")
        if sk.startswith("AUDIT#"):
            return "audit record (queued, batched)" if operation == "BatchWriteItem" else "audit record"
    for prefix, kind in (("ISSUE#", "issue -> document"), ("RECENT#", "recent issue ids"),
                         ("WM#", "watermark and checkpoint"), ("LOCK#", "lease lock"),
                         ("IDEMPOTENCY#", "delivery idempotency")):
        if pk.startswith(prefix):
            return kind
    return "other"


def _text(value: Any) -> str:
    return str(value.get("S", "")) if isinstance(value, dict) else str(value or "")


class _DynamoCalls:
    """DynamoDB requests by operation, and the items each write names, through botocore's parameter events."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        self.requests[operation] += 1
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Item") or params.get("Key") or {}
            self.writes[_item_kind(_text(key.get("PK")), _text(key.get("SK")), operation)] += 1
        elif operation == "BatchWriteItem":
            for requests in params.get("RequestItems", {}).values():
                for request in requests:
                    item = (request.get("PutRequest") or {}).get("Item") or (request.get("DeleteRequest") or {}).get(
                        "Key") or {}
                    self.writes[_item_kind(_text(item.get("PK")), _text(item.get("SK")), operation)] += 1


@dataclass
class _Run:
    name: str
    acumatica: Counter[str]
    exceptions: int
    issues: int
    assigned: int
    dynamodb: _DynamoCalls

    @property
    def total(self) -> int:
        return sum(self.acumatica.values())


def _kind(entry: Any) -> str:
    """What one Acumatica request was for, from the sandbox's log."""
    path, query = entry.path, entry.query
    if path.startswith("/identity/"):
        return "token"
    if path.rstrip("/") == "/entity":
        return "endpoint version"
    if "LastModifiedDateTime" in query.get("$filter", ""):
        return "list pages"
    if query.get("$expand") == "Details":
        return "bill lines, batched" if path.endswith("/Bill") else "bill lines, one bill"
    if "/PurchaseOrder" in path:
        return "purchase order owners, batched" if path.endswith("/PurchaseOrder") else "purchase order, one"
    return "document re-reads" if entry.method == "GET" else f"{entry.method} (actions)"


def _seed(sandbox: Any, config: Config, now: datetime) -> int:
    """The backlog: purchase orders owned by the buyers, then bills billing them; returns the exceptions."""
    bills = config.documents - config.orders
    for n in range(config.orders):
        sandbox.add_document("PurchaseOrder", OrderNbr=f"PO{n + 1:06d}", Hold=False, Owner=f"buyer.{n % BUYERS:02d}",
                             LastModifiedDateTime=(now - timedelta(days=30)).isoformat(timespec="milliseconds"))
    exceptions = 0
    for n in range(bills):
        held = n % config.exception_every == 0
        exceptions += held
        modified = now - timedelta(days=20) + timedelta(days=20) * n / bills
        sandbox.add_document(
            "Bill", ReferenceNbr=f"{n + 1:06d}", Vendor=f"V{n % 250 + 1:06d}", Amount=100 + n % 900,
            Hold=held, Status="On Hold" if held else ("Balanced", "Open", "Closed")[n % 3],
            LastModifiedDateTime=modified.isoformat(timespec="milliseconds"),
            Details=[{"POOrderType": "Normal", "POOrderNbr": f"PO{n // config.exception_every % config.orders + 1:06d}",
                      "POLine": 1, "Amount": 100 + n % 900}])
    return exceptions


@contextmanager
def _one_read_per_bill(read_lines_anyway: bool) -> Iterator[None]:
    """The naive way, in these same handlers: the poll reads no lines (the router is left out), so the worker reads
    each new bill's lines and then its order, one bill at a time; ``read_lines_anyway`` also without a routing table,
    as before the connector asked whether a buyer could be mapped."""
    import connector.sync as sync

    class NoBatches(sync.PageRouter):
        def annotate(self, messages, documents, states):
            return messages

    with mock.patch.object(sync, "PageRouter", NoBatches):
        if read_lines_anyway:
            with mock.patch.object(sync, "wants_lines", lambda owner_map: True):
                yield
        else:
            yield


def _measure(name: str, config: Config, owner_map: dict[str, str], naive: bool | None = None) -> _Run:
    import boto3

    from connector_local.jira_sandbox import PERSON_ACCOUNT
    from connector_local.stack import LocalStack

    now = datetime.now(timezone.utc)
    env = {"OWNER_MAP": json.dumps(owner_map)}
    naive_way = _one_read_per_bill(read_lines_anyway=not owner_map) if naive else nullcontext()
    with LocalStack.start(env, quiet=True) as stack, naive_way:
        exceptions = _seed(stack.acumatica, config, now)
        dynamodb = _DynamoCalls()
        boto3._get_default_session().events.register("before-parameter-build.dynamodb", dynamodb)
        try:
            del stack.acumatica.requests_log[:]
            stack.tick("PollerFunction")
            stack.drain()
            counts = Counter(_kind(entry) for entry in stack.acumatica.requests_log)
        finally:
            boto3._get_default_session().events.unregister("before-parameter-build.dynamodb", dynamodb)
        issues = stack.jira.issues()
        assigned = sum(1 for issue in issues if (issue["fields"].get("assignee") or {}).get("accountId")
                       == PERSON_ACCOUNT)
        return _Run(name, counts, exceptions, len(issues), assigned, dynamodb)


def _breakdown(run: _Run) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(run.acumatica.items(), key=lambda item: -item[1]))


def run(config: Config) -> Result:
    owner_map = {f"buyer.{n:02d}": "5b10ac8d82e05b22cc7d4ef5" for n in range(BUYERS)}
    bills = config.documents - config.orders
    result = Result("routing", f"{config.documents:,} documents ({bills:,} Bills, 1 in {config.exception_every} on "
                               f"hold, billing {config.orders} purchase orders owned by {BUYERS} buyers) through the "
                               "real poller and worker, each configuration on a fresh local stack; Acumatica requests "
                               "counted by the sandbox")
    runs = [_measure("no routing table", config, {}),
            _measure("OwnerMap", config, owner_map),
            _measure("naive, OwnerMap (one read per bill)", config, owner_map, naive=True),
            _measure("naive, no routing table (lines read anyway)", config, {}, naive=True)]
    plain, routed, naive, naive_plain = runs
    for each in runs:
        result.check(f"[{each.name}] every exception got exactly one issue", each.issues == each.exceptions,
                     f"{each.issues:,}/{each.exceptions:,}")
    for each in (routed, naive):
        result.check(f"[{each.name}] every bill's issue went to the buyer of its purchase order",
                     each.assigned == each.exceptions, f"{each.assigned:,}/{each.exceptions:,}")
    line_reads = sum(n for kind, n in plain.acumatica.items() if "lines" in kind or "purchase order" in kind)
    result.check("[no routing table] no line and no purchase order read", line_reads == 0, f"{line_reads} read")

    result.add("Acumatica requests, no routing table", plain.total, "",
               f"{_breakdown(plain)}; per exception {plain.total / plain.exceptions:.3f}", goal="no line read",
               met=line_reads == 0)
    at_goal_size = config.documents == 5000 and config.exception_every == 10
    result.add("Acumatica requests, OwnerMap", routed.total, "",
               f"{_breakdown(routed)}; per exception {routed.total / routed.exceptions:.3f}",
               goal=f"<= {GOAL_WITH_OWNER_MAP} for 5,000 documents, 10% exceptions (goal {STRETCH_GOAL})",
               met=routed.total <= GOAL_WITH_OWNER_MAP if at_goal_size else None)
    result.add("naive: Acumatica requests, OwnerMap (one read per bill)", naive.total, "",
               f"{_breakdown(naive)}; per exception {naive.total / naive.exceptions:.3f}")
    result.add("naive: Acumatica requests, no routing table (lines read anyway)", naive_plain.total, "",
               f"{_breakdown(naive_plain)}; the connector before #23")
    result.add("OwnerMap vs naive: Acumatica requests", round(routed.total / max(naive.total, 1), 3), "x",
               "the same backlog, the same buyers found")

    writes = routed.dynamodb.writes
    per = routed.exceptions
    named = "; ".join(f"{kind} {n / per:.2f} ({READERS.get(kind, 'see docs/data-model.md')})"
                      for kind, n in sorted(writes.items(), key=lambda item: -item[1]) if kind != "other")
    total_requests = sum(routed.dynamodb.requests.values())
    result.add("DynamoDB requests per exception (poll + work, OwnerMap)", round(total_requests / per, 2), "",
               ", ".join(f"{op} {n / per:.2f}" for op, n in routed.dynamodb.requests.most_common()))
    result.add("DynamoDB items written per new exception, by item", round(sum(writes.values()) / per, 2), "",
               named + "; each open document state also writes the sparse OpenDocuments index once")
    result.notes.append("Requests per 5,000 documents scale with pages (500 documents each), chunks of about 50 new "
                        "exception bills per lines request, and distinct purchase orders per owners request (each "
                        "read once per poll run); the naive way adds two requests per new bill issue.")
    return result
