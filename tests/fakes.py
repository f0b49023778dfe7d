"""In-memory stand-ins for the small ports, for unit tests that need no AWS at all."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any, Mapping


class MemorySecret:
    """A ``SecretStore`` held in memory; counts writes so tests can assert on persistence order."""

    def __init__(self, value: Mapping[str, Any]) -> None:
        self._value = dict(value)
        self._guard = threading.Lock()
        self.writes = 0

    def read(self) -> dict[str, Any]:
        with self._guard:
            return copy.deepcopy(self._value)

    def write(self, value: Mapping[str, Any]) -> None:
        with self._guard:
            self._value = copy.deepcopy(dict(value))
            self.writes += 1


class MemoryLock:
    """A ``LeaseLock`` held in memory, with real lease expiry."""

    def __init__(self, clock=time.time) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()
        self._clock = clock

    def acquire(self, name: str, owner: str, lease_seconds: float) -> bool:
        with self._guard:
            current = self._held.get(name)
            if current and current[0] != owner and current[1] > self._clock():
                return False
            self._held[name] = (owner, self._clock() + lease_seconds)
            return True

    def holds(self, name: str, owner: str, lease_seconds: float) -> bool:
        with self._guard:
            current = self._held.get(name)
            if not current or current[0] != owner or current[1] < self._clock():
                return False
            self._held[name] = (owner, self._clock() + lease_seconds)
            return True

    def release(self, name: str, owner: str) -> None:
        with self._guard:
            if self._held.get(name, ("",))[0] == owner:
                del self._held[name]


# --- in-memory Acumatica and Jira for core tests (the sandboxes cover the wire protocols) --------------------------

import itertools  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from decimal import Decimal  # noqa: E402

from connector.errors import NotFoundError, UncertainOutcome, ValidationError  # noqa: E402
from connector.model import Document, DocumentKey  # noqa: E402
from connector.ports import DocState, IssueDraft, IssueRef, Page, StatusChange  # noqa: E402
from connector.rules import classify, fingerprint, snapshot  # noqa: E402


def make_doc(entity: str = "Bill", number: str = "000123", *, status: str = "On Hold", hold: bool | None = None,
             vendor: str = "V000001", amount: str = "1250.00", total: str | None = None, doc_type: str | None = None,
             owner: str | None = None, errors: dict[str, str] | None = None,
             modified: datetime | None = None) -> Document:
    doc_type = doc_type or {"Bill": "Bill", "PurchaseOrder": "Normal", "Check": "Payment"}[entity]
    has_control = entity != "Check"
    return Document(
        key=DocumentKey(entity, doc_type, number), status=status,
        hold=(status == "On Hold") if hold is None else hold, vendor=vendor, amount=Decimal(amount), currency="USD",
        last_modified=modified or datetime(2026, 11, 1, tzinfo=timezone.utc),
        control_amount=Decimal(amount) if has_control else None,
        total_amount=Decimal(total if total is not None else amount) if has_control else None,
        owner=owner, errors=dict(errors or {}), fields={"ReferenceNbr": number, "Vendor": vendor, "Status": status},
    )


class FakeAcumatica:
    """A ``DocumentSource`` over a dict; records every action so tests can assert "exactly once"."""

    def __init__(self, *docs: Document) -> None:
        self.docs: dict[DocumentKey, Document] = {d.key: d for d in docs}
        self.actions: list[tuple[str, str]] = []
        self.fail_action: Exception | None = None
        self.lose_response_once = False
        self.gets = 0
        self.order_lines: dict[DocumentKey, list[DocumentKey]] = {}
        self.parameters: list[dict] = []
        self.batched: list[tuple[str, list[DocumentKey]]] = []
        """Every batched read (``bill_orders``, ``order_owners``, ``existing``) with the keys it asked for."""
        self.fail_reads: dict[str, Exception] = {}
        """Read (``get <Entity>``, ``referenced_orders``, ``bill_orders``, ``order_owners``, ``existing``) -> what it
        raises."""

    def put(self, doc: Document) -> None:
        self.docs[doc.key] = doc

    def changed_pages(self, entity, since, *, skip=0, page_size=500):
        matching = sorted((d for d in self.docs.values() if d.key.entity == entity
                           and (d.last_modified is None or d.last_modified >= since)), key=lambda d: hash(d.key.number))
        position = skip
        while True:
            chunk = matching[position:position + page_size]
            position += len(chunk)
            yield Page(chunk, position, len(chunk) < page_size)
            if len(chunk) < page_size:
                return

    def _may_fail(self, read):
        if read in self.fail_reads:
            raise self.fail_reads[read]

    def get(self, key):
        self.gets += 1
        self._may_fail(f"get {key.entity}")
        return self.docs.get(key)

    def referenced_orders(self, key):
        self.batched.append(("referenced_orders", [key]))
        self._may_fail("referenced_orders")
        return list(self.order_lines.get(key, []))

    def bill_orders(self, bills):
        self.batched.append(("bill_orders", list(bills)))
        self._may_fail("bill_orders")
        return {bill: list(self.order_lines.get(bill, [])) for bill in bills if bill in self.docs}

    def order_owners(self, orders):
        self.batched.append(("order_owners", list(orders)))
        self._may_fail("order_owners")
        return {order: self.docs[order].owner for order in orders if order in self.docs}

    def existing(self, keys):
        self.batched.append(("existing", list(keys)))
        self._may_fail("existing")
        return {key for key in keys if key in self.docs}

    def _apply(self, key, action, new_status, hold=None):
        if self.fail_action:
            raise self.fail_action
        self.actions.append((key.external_id, action))
        doc = self.docs[key]
        self.docs[key] = replace(doc, status=new_status, hold=doc.hold if hold is None else hold)
        if self.lose_response_once:
            self.lose_response_once = False
            raise UncertainOutcome("timed out waiting for the action")
        return self.docs[key]

    def set_hold(self, key, hold):
        doc = self.docs[key]
        if doc.control_amount != doc.total_amount:
            raise ValidationError("Document is out of balance", {"Amount": "out of balance"})
        return self._apply(key, "RemoveHold", "Balanced" if doc.key.entity != "PurchaseOrder" else "Open", hold)

    def invoke_action(self, key, action, parameters=None):
        self.parameters.append(dict(parameters or {}))
        doc = self.docs[key]
        if action == "ReleaseBill" and doc.status == "Balanced":
            return self._apply(key, action, "Open")
        if action == "ReleaseCheck" and doc.status == "Balanced":
            return self._apply(key, action, "Closed")
        if action == "Approve" and doc.status == "Pending Approval":
            return self._apply(key, action, "Balanced" if key.entity == "Bill" else "Open")
        if action == "Reject" and doc.status == "Pending Approval":
            return self._apply(key, action, "Rejected")
        raise ValidationError(f"{action} is not allowed while {doc.status}")

    def workflow_actions(self, entity):
        return ["Approve", "Reject"]

    def action_parameters(self, entity, action):
        return []


class FakeJira:
    """An ``IssueTracker`` with Jira's eventual consistency: new issues are invisible to search until
    ``settle()`` unless their id is reconciled. ``crash_after_create`` simulates losing the create response."""

    def __init__(self) -> None:
        self.issues: dict[str, dict] = {}
        self.comments: dict[str, list[dict]] = {}
        self.searchable: set[str] = set()
        self.ids = itertools.count(10001)
        self.calls: list[str] = []
        self.crash_after_create = False
        self.links: list[tuple[str, str, str]] = []
        self.statuses = {"Done": "done", "To Do": "new", "In Progress": "indeterminate", "Closed": "done"}
        self.account = "connector-account"
        self.changelogs: dict[str, list[StatusChange]] = {}
        self.change_ids = itertools.count(30000)
        self.groups: dict[str, set[str]] = {}
        """accountId -> the names of the Jira groups it belongs to (``user_groups``)."""
        self.accounts: dict[str, tuple[str, bool]] = {}
        """accountId -> (accountType, active) for actors that are not active people (``move`` reads it)."""
        self.person_comments: dict[str, list] = {}
        """What ``recent_comments`` answers: the ``IssueComment``s people wrote, set by tests."""

    def settle(self) -> None:
        self.searchable = set(self.issues)

    def _ref(self, key):
        issue = self.issues[key]
        return IssueRef(id=issue["id"], key=key, status=issue["status"], resolution=issue.get("resolution"),
                        status_category=self.statuses.get(issue["status"], "new"), external_id=issue["external_id"],
                        creator_account_id=issue.get("creator", self.account),
                        fields={"labels": list(issue.get("labels") or ()),
                                "assignee": {"accountId": issue["assignee"]} if issue.get("assignee") else None})

    def move(self, key, status, actor="person-account", resolution=None):
        """Someone (a person unless ``actor`` says otherwise: see ``accounts``) moves the issue; the changelog records
        it, with the resolution the move set (Jira sets one on a move into a done status, "Done" unless chosen)."""
        old = self.issues[key]["status"]
        done = self.statuses.get(status, "new") == "done"
        resolution = (resolution or "Done") if done else None
        changed = resolution if resolution != self.issues[key].get("resolution") else None
        account_type, active = self.accounts.get(actor, ("app" if actor == self.account else "atlassian", True))
        self.changelogs.setdefault(key, []).append(StatusChange(
            str(next(self.change_ids)), actor, "2026-11-02T10:00:00.000+0000", old, status,
            self.statuses.get(old, "new"), self.statuses.get(status, "new"), author_account_type=account_type,
            author_active=active, author_name=actor, resolution=changed))
        self.issues[key]["status"] = status
        self.issues[key]["resolution"] = resolution

    def user_groups(self, account_id):
        self.calls.append("groups")
        return frozenset(self.groups.get(account_id, ()))

    def status_changes(self, key):
        self.calls.append("changelog")
        return list(self.changelogs.get(key, []))

    def own_account_id(self):
        return self.account

    def recent_comments(self, key):
        self.calls.append("comments")
        return list(self.person_comments.get(key, []))

    def find_by_external_id(self, external_id, reconcile_ids=()):
        self.calls.append("search")
        visible = self.searchable | {k for k, i in self.issues.items() if i["id"] in set(reconcile_ids)}
        for key in sorted(visible):
            if self.issues[key]["external_id"] == external_id:
                return self._ref(key)
        return None

    def get_issue(self, key):
        self.calls.append("get")
        key = next((k for k, issue in self.issues.items() if key in (k, issue["id"])), None)
        return self._ref(key) if key is not None else None

    def create_issue(self, draft: IssueDraft):
        self.calls.append("create")
        number = next(self.ids)
        key = f"AP-{number - 10000}"
        self.issues[key] = {"id": str(number), "summary": draft.summary, "description": draft.description,
                            "external_id": draft.external_id, "labels": list(draft.labels or ()),
                            "assignee": draft.assignee_account_id, "status": "To Do",
                            "priority": draft.priority or "Medium", "duedate": draft.due_date}
        self.comments[key] = []
        if self.crash_after_create:
            self.crash_after_create = False
            raise RuntimeError("worker crashed after Jira created the issue")
        return self._ref(key)

    def update_issue(self, key, draft):
        self.calls.append("update")
        if key not in self.issues:
            raise NotFoundError(key)
        for name, target in (("summary", "summary"), ("description", "description"), ("labels", "labels"),
                             ("assignee_account_id", "assignee"), ("priority", "priority"), ("due_date", "duedate")):
            if getattr(draft, name) is not None:
                self.issues[key][target] = getattr(draft, name)

    def link_issues(self, inward_key, outward_key, link_type="Relates"):
        self.calls.append("link")
        if inward_key not in self.issues or outward_key not in self.issues:
            raise NotFoundError(f"{inward_key} or {outward_key}")
        self.links.append((link_type, inward_key, outward_key))

    def add_label(self, key, label):
        self.calls.append("label")
        if key not in self.issues:
            raise NotFoundError(key)
        if label not in self.issues[key]["labels"]:
            self.issues[key]["labels"].append(label)

    def add_comment(self, key, body):
        self.calls.append("comment")
        if key not in self.issues:
            raise NotFoundError(key)
        self.comments[key].append(body)
        return str(len(self.comments[key]))

    def transition_to(self, key, status_name):
        self.calls.append("transition")
        if status_name not in self.statuses:
            return False
        self.move(key, status_name, self.account)
        return True

    def transition_to_category(self, key, category_key):
        self.calls.append("transition")
        target = next((name for name, category in self.statuses.items() if category == category_key), None)
        if target is None:
            return False
        self.move(key, target, self.account)
        return True


def recorded(doc, store, jira, key="AP-1", issue_id="10001", status="To Do"):
    """The connector's own issue for ``doc``, as sync leaves it: in Jira and in the ledger."""
    jira.issues[key] = {"id": issue_id, "external_id": doc.key.external_id, "status": status}
    jira.comments[key] = []
    snap = snapshot(doc, classify(doc))
    store.save_state(doc.key, DocState(issue_key=key, issue_id=issue_id, fingerprint=fingerprint(snap),
                                       snapshot=snap, open=True))
    store.link_issue(key, issue_id, doc.key)
    jira.settle()
