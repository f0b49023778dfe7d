"""DynamoDB adapter: the single connector table (watermarks, document state, claims, locks, audit).

Every write that guards a side effect is a conditional write, so two workers (or a replayed message) can never
both win. Layout (PK / SK): see docs/data-model.md.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from . import watermarks
from .audit import audit_item, queued_audit_items, storable
from .errors import TransientError
from .model import DocumentKey, WorkMessage
from .ports import Claim, Cursor, DocState

RECENT_IDS_LIMIT = 50
UNDELIVERED_PK = "STATS#undelivered-resolutions"
"""Counter of resolutions the sweep found before any delivery announced them (``connector status``)."""
CONDITION_FAILED = "ConditionalCheckFailedException"
OPEN_INDEX = "OpenDocuments"
"""The table's sparse index of document states whose exception is open (``entity`` is written only then)."""


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _seconds(value: Any) -> timedelta | None:
    return timedelta(seconds=float(value)) if value is not None else None


def plain(value: Any) -> Any:
    """DynamoDB returns numbers as Decimal; hand the core ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == CONDITION_FAILED


class DynamoStore:
    """Implements ``connector.ports.StateStore`` and ``connector.ports.LeaseLock`` over one table."""

    def __init__(self, table: Any, *, audit_retention_days: int = 400, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._retention = audit_retention_days * 86400
        self._clock = clock

    @classmethod
    def from_name(cls, table_name: str, **kwargs: Any) -> DynamoStore:
        import boto3

        return cls(boto3.resource("dynamodb").Table(table_name), **kwargs)

    # --- cursors -----------------------------------------------------------------------------------------------

    def get_cursor(self, entity: str) -> Cursor:
        """The cursor; a watermark stored without its rendered text (written from the Lambda's clock by releases
        before the watermark came from the data) is not trusted, so the next pass re-reads every document."""
        item = self._table.get_item(Key={"PK": f"WM#{entity}", "SK": "WM"}, ConsistentRead=True).get("Item")
        if not item:
            return Cursor()
        text = item.get("watermark_text")
        return Cursor(
            watermark=watermarks.parse(text) if text else None,
            watermark_text=text,
            lookback=timedelta(seconds=float(item.get("lookback_seconds", 0))),
            pass_from=_parse(item.get("pass_from")),
            pass_started=_parse(item.get("pass_started")),
            pass_max=item.get("pass_max"),
            skip=int(item.get("skip", 0)),
            full_pass_at=_parse(item.get("full_pass_at")),
            checked_at=_parse(item.get("checked_at")),
            server_checked=_parse(item.get("server_checked")),
            last_rewind=item.get("last_rewind"),
            lead=_seconds(item.get("lead_seconds")),
            pass_lead=_seconds(item.get("pass_lead_seconds")),
            pass_stepped=bool(item.get("pass_stepped", False)),
        )

    def put_cursor(self, entity: str, cursor: Cursor) -> None:
        item = {"PK": f"WM#{entity}", "SK": "WM", "skip": cursor.skip, "updated_at": _iso(self._now()),
                "lookback_seconds": Decimal(str(cursor.lookback.total_seconds()))}
        for name in ("pass_started", "full_pass_at", "checked_at", "server_checked"):
            if getattr(cursor, name):
                item[name] = _iso(getattr(cursor, name))
        if cursor.pass_from is not None:
            item["pass_from"] = cursor.pass_from.isoformat()  # in the offset it is sent in, not converted
        for name in ("watermark_text", "pass_max", "last_rewind"):
            if getattr(cursor, name):
                item[name] = getattr(cursor, name)
        for name in ("lead", "pass_lead"):
            if getattr(cursor, name) is not None:
                item[f"{name}_seconds"] = Decimal(str(getattr(cursor, name).total_seconds()))
        if cursor.pass_stepped:
            item["pass_stepped"] = True
        if cursor.watermark is not None:
            item["watermark"] = _iso(cursor.watermark)  # readable in the console; the text is what is used
        self._table.put_item(Item=item)

    # --- document state ----------------------------------------------------------------------------------------

    @staticmethod
    def _state(item: Mapping[str, Any]) -> DocState:
        return DocState(
            issue_key=item.get("issue_key"),
            issue_id=item.get("issue_id"),
            fingerprint=item.get("fingerprint", ""),
            snapshot=dict(item.get("snapshot") or {}),
            open=bool(item.get("open", False)),
            version=int(item.get("version", 0)),
            opened_at=float(item["opened_at"]) if item.get("opened_at") is not None else None,
            declined=str(item.get("declined") or ""),
        )

    def get_states(self, keys: Sequence[DocumentKey]) -> dict[DocumentKey, DocState]:
        by_pk = {key.pk: key for key in keys}
        pending = [{"PK": pk, "SK": "STATE"} for pk in by_pk]
        found: dict[DocumentKey, DocState] = {}
        client = self._table.meta.client
        while pending:
            batch, pending = pending[:100], pending[100:]
            request = {self._table.name: {"Keys": batch, "ConsistentRead": True,
                                          "ProjectionExpression": "PK, fingerprint, issue_key, #o, version, opened_at",
                                          "ExpressionAttributeNames": {"#o": "open"}}}
            for attempt in range(8):
                response = client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table.name, []):
                    found[by_pk[item["PK"]]] = self._state(item)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise TransientError("DynamoDB kept keys unprocessed in a batch read")
        return found

    def get_state(self, key: DocumentKey) -> DocState | None:
        item = self._table.get_item(Key={"PK": key.pk, "SK": "STATE"}, ConsistentRead=True).get("Item")
        return self._state(item) if item else None

    def save_state(self, key: DocumentKey, state: DocState) -> DocState:
        new_version = state.version + 1
        item = {
            "PK": key.pk, "SK": "STATE", "external_id": key.external_id,
            "fingerprint": state.fingerprint, "snapshot": dict(state.snapshot), "open": state.open,
            "version": new_version, "updated_at": _iso(self._now()),
        }
        if state.open:  # the OpenDocuments index holds only open exceptions: a closed one leaves it
            item["entity"] = key.entity
        if state.issue_key:
            item.update(issue_key=state.issue_key, issue_id=state.issue_id)
        if state.opened_at is not None:
            item["opened_at"] = Decimal(str(state.opened_at))
        if state.declined:
            item["declined"] = state.declined
        condition = Attr("version").eq(state.version) if state.version else Attr("PK").not_exists()
        try:
            self._table.put_item(Item=storable(item), ConditionExpression=condition)
        except ClientError as exc:
            if _condition_failed(exc):
                raise TransientError(f"{key} was updated concurrently; retrying with fresh state") from None
            raise
        return DocState(state.issue_key, state.issue_id, state.fingerprint, dict(state.snapshot), state.open,
                        new_version, state.opened_at, state.declined)

    def open_documents(self, entity: str) -> list[DocumentKey]:
        """Documents of ``entity`` whose exception is open, from the sparse ``OpenDocuments`` index: a Query reads
        only those (plus, once, states an earlier release wrote with ``entity`` whatever their state, which the
        filter drops), never the table's claims and audit records as a Scan would. Eventually consistent, which a
        daily check can afford: a state opened or closed in the last moments is seen by the next run."""
        keys: list[DocumentKey] = []
        kwargs: dict[str, Any] = {"IndexName": OPEN_INDEX, "KeyConditionExpression": Key("entity").eq(entity),
                                  "FilterExpression": Attr("open").eq(True), "ProjectionExpression": "external_id"}
        while True:
            page = self._table.query(**kwargs)
            keys.extend(DocumentKey.parse(item["external_id"]) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return keys
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- claims ------------------------------------------------------------------------------------------------

    def claim(self, key: DocumentKey, name: str, *, fingerprint: str, retake_after_seconds: float) -> Claim:
        now = self._clock()
        item = {"PK": key.pk, "SK": f"CLAIM#{name}", "state": "claimed", "claimed_at": Decimal(str(now)),
                "fingerprint": fingerprint, "claim_id": str(uuid.uuid4())}
        condition = (
            Attr("PK").not_exists()
            | Attr("state").eq("failed")
            | (Attr("state").eq("done") & Attr("fingerprint").ne(fingerprint))
            | (Attr("state").eq("claimed") & Attr("claimed_at").lt(Decimal(str(now - retake_after_seconds))))
        )
        try:
            previous = self._table.put_item(Item=item, ConditionExpression=condition,
                                            ReturnValues="ALL_OLD").get("Attributes") or {}
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            held = self.get_claim(key, name)
            return held or Claim(False, "claimed", now, {})
        # A retaken claim hands on what its crashed attempt recorded (``commented``), so the retake does not redo it.
        carried = plain(previous) if previous.get("state") == "claimed" else {}
        return Claim(True, "claimed", now, carried)

    def get_claim(self, key: DocumentKey, name: str) -> Claim | None:
        item = self._table.get_item(Key={"PK": key.pk, "SK": f"CLAIM#{name}"}, ConsistentRead=True).get("Item")
        if not item:
            return None
        found = plain(item)
        return Claim(False, found.get("state", ""), float(found.get("claimed_at", 0)), found)

    def finish_claim(self, key: DocumentKey, name: str, state: str, **details: Any) -> None:
        names = {"#s": "state"}
        values: dict[str, Any] = {":s": state, ":t": Decimal(str(self._clock()))}
        sets = ["#s = :s", "finished_at = :t"]
        for index, (field, value) in enumerate(sorted(details.items())):
            names[f"#d{index}"] = field
            values[f":d{index}"] = storable(value)
            sets.append(f"#d{index} = :d{index}")
        self._table.update_item(Key={"PK": key.pk, "SK": f"CLAIM#{name}"}, UpdateExpression="SET " + ", ".join(sets),
                                ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    # --- issues ------------------------------------------------------------------------------------------------

    def link_issue(self, issue_key: str, issue_id: str, key: DocumentKey) -> None:
        self._table.put_item(Item={"PK": f"ISSUE#{issue_key}", "SK": "DOC", "external_id": key.external_id,
                                   "issue_id": issue_id})
        self._table.update_item(
            Key={"PK": "RECENT#issues", "SK": "RECENT"},
            UpdateExpression="SET ids = list_append(:id, if_not_exists(ids, :empty))",
            ExpressionAttributeValues={":id": [issue_id], ":empty": []},
        )

    def document_for_issue(self, issue_key: str) -> DocumentKey | None:
        item = self._table.get_item(Key={"PK": f"ISSUE#{issue_key}", "SK": "DOC"}).get("Item")
        return DocumentKey.parse(item["external_id"]) if item else None

    def recent_issue_ids(self) -> list[str]:
        item = self._table.get_item(Key={"PK": "RECENT#issues", "SK": "RECENT"}).get("Item") or {}
        ids = [str(i) for i in item.get("ids", [])][:RECENT_IDS_LIMIT]
        if len(item.get("ids", [])) > 4 * RECENT_IDS_LIMIT:  # keep the item small: trim occasionally
            self._table.update_item(Key={"PK": "RECENT#issues", "SK": "RECENT"}, UpdateExpression="SET ids = :ids",
                                    ExpressionAttributeValues={":ids": ids})
        return ids

    # --- audit -------------------------------------------------------------------------------------------------

    def audit(self, key: DocumentKey, event: str, outcome: str, *, correlation_id: str, reason: str = "",
              details: Mapping[str, Any] | None = None) -> None:
        self._table.put_item(Item=audit_item(key, event, outcome, correlation_id=correlation_id, reason=reason,
                                             details=details, now=self._clock(), retention_seconds=self._retention))

    def audit_queued(self, messages: Sequence[WorkMessage], *, at: float | None = None,
                     record_id: str | None = None) -> None:
        with self._table.batch_writer() as batch:  # 25 items a request, unprocessed items resent by boto3
            for item in queued_audit_items(messages, now=self._clock() if at is None else at,
                                           retention_seconds=self._retention, record_id=record_id):
                batch.put_item(Item=item)

    def audit_trail(self, key: DocumentKey) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("PK").eq(key.pk) & Key("SK").begins_with("AUDIT#")}
        while True:
            page = self._table.query(**kwargs)
            items.extend(plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- resolutions no delivery announced ------------------------------------------------------------------

    def count_undelivered_resolution(self, issue_key: str) -> None:
        self._table.update_item(
            Key={"PK": UNDELIVERED_PK, "SK": "STATS"},
            UpdateExpression="ADD #n :one SET last_issue = :issue, last_at = :at",
            ExpressionAttributeNames={"#n": "count"},
            ExpressionAttributeValues={":one": 1, ":issue": issue_key, ":at": Decimal(str(self._clock()))})

    def undelivered_resolutions(self) -> dict[str, Any]:
        item = self._table.get_item(Key={"PK": UNDELIVERED_PK, "SK": "STATS"}, ConsistentRead=True).get("Item") or {}
        return {"count": int(item.get("count", 0)), "last_issue": item.get("last_issue"),
                "last_at": float(item["last_at"]) if item.get("last_at") is not None else None}

    # --- lease locks (token refresh) ---------------------------------------------------------------------------

    def acquire(self, name: str, owner: str, lease_seconds: float) -> bool:
        now = self._clock()
        try:
            self._table.put_item(
                Item={"PK": f"LOCK#{name}", "SK": "LOCK", "owner": owner,
                      "lease_until": Decimal(str(now + lease_seconds)), "expires_at": int(now + lease_seconds + 3600)},
                ConditionExpression=Attr("PK").not_exists() | Attr("lease_until").lt(Decimal(str(now)))
                | Attr("owner").eq(owner),
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def holds(self, name: str, owner: str, lease_seconds: float) -> bool:
        now = self._clock()
        try:
            self._table.update_item(
                Key={"PK": f"LOCK#{name}", "SK": "LOCK"}, UpdateExpression="SET lease_until = :until",
                ConditionExpression=Attr("owner").eq(owner) & Attr("lease_until").gte(Decimal(str(now))),
                ExpressionAttributeValues={":until": Decimal(str(now + lease_seconds))})
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def release(self, name: str, owner: str) -> None:
        try:
            self._table.delete_item(Key={"PK": f"LOCK#{name}", "SK": "LOCK"}, ConditionExpression=Attr("owner").eq(owner))
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)
