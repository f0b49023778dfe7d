"""Where the tables live outside the Lambda environment: imported versions in the connector's DynamoDB table, and the
template's table parameters in their secret. Layout: docs/data-model.md; the story: docs/tables.md.

A version is written whole before anything points at it: its document (canonical JSON, zlib-compressed, cut into
chunks under DynamoDB's 400 KB item limit, in a partition of its own), then its record (number, who, when, digest,
chunk count), and only then the pointer moves, in one conditional write that names the version it replaces. A reader
reads the pointer, then the record, then the chunks, and checks the digest: it never sees half a version, and a
pointer moved by hand to something damaged is refused, not routed on. Version numbers come from an atomic counter on
the pointer item, so two imports never write the same number; the second of two concurrent imports fails its pointer
write and tells its operator, instead of silently replacing what the first one decided.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import zlib
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as NetworkError, HTTPClientError

from .audit import storable
from .errors import ConfigurationError, ConnectorError, TransientError
from .secrets import SecretsManagerText
from .store import plain
from .table_versions import VersionInfo
from .tables import canonical

PARTITION = "CONFIG#tables"
POINTER = "CURRENT"
CHUNK_BYTES = 350_000
"""Compressed bytes per chunk item: under DynamoDB's 400 KB item limit with room for the keys."""
MAX_DOCUMENT_BYTES = 8_000_000
"""The largest document (canonical JSON) a version holds: 10,000 vendors take about 1 MB."""


class VersionConflict(ConnectorError):
    """Another import or rollback made a version current between this one's read and its pointer write."""


def _version_key(number: int) -> str:
    return f"V#{number:08d}"


def _chunk_partition(number: int) -> str:
    return f"{PARTITION}#{_version_key(number)}"


class DynamoTableVersions:
    """``connector.table_versions.VersionStore`` over the connector table, through a low-level DynamoDB client."""

    def __init__(self, client: Any, table_name: str, *, audit_retention_days: int = 400,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._retention = audit_retention_days * 86400
        self._clock = clock
        self._serialize = TypeSerializer().serialize
        self._deserialize = TypeDeserializer().deserialize

    @classmethod
    def from_name(cls, table_name: str, **kwargs: Any) -> DynamoTableVersions:
        import boto3

        return cls(boto3.client("dynamodb"), table_name, **kwargs)

    # --- reading -------------------------------------------------------------------------------------------------

    def current(self) -> int | None:
        item = self._get(POINTER, projection="version")
        return int(item["version"]) if item and "version" in item else None

    def info(self, number: int) -> VersionInfo | None:
        item = self._get(_version_key(number))
        return _info(item) if item else None

    def load(self, number: int) -> dict[str, Any]:
        record = self._get(_version_key(number))
        if record is None:
            raise ConfigurationError(f"tables version {number} does not exist")
        chunks = self._query(_chunk_partition(number))
        if len(chunks) != int(record["chunks"]):
            raise ConfigurationError(f"tables version {number} is damaged: {len(chunks)} of its "
                                     f"{int(record['chunks'])} chunks are stored")
        try:
            data = zlib.decompress(b"".join(bytes(chunk["data"]) for chunk in chunks))
        except zlib.error:
            raise ConfigurationError(f"tables version {number} is damaged: its chunks do not decompress") from None
        if hashlib.sha256(data).hexdigest() != record["digest"]:
            raise ConfigurationError(f"tables version {number} is damaged: its content does not match its digest")
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ConfigurationError(f"tables version {number} is damaged: it is not a JSON object")
        return document

    def history(self) -> list[VersionInfo]:
        items = self._query(PARTITION, begins_with="V#", newest_first=True)
        return [_info(item) for item in items]

    def audit_trail(self) -> list[dict[str, Any]]:
        return self._query(PARTITION, begins_with="AUDIT#")

    # --- writing -------------------------------------------------------------------------------------------------

    def publish(self, document: Mapping[str, Any], *, expected: int | None, by: str, action: str,
                effect: Mapping[str, Any], source: str = "", rollback_of: int | None = None) -> VersionInfo:
        """Store ``document`` as a new version and make it current, if ``expected`` is still current.

        Raises ``VersionConflict`` (nothing of this version is current, and its items are removed) otherwise."""
        data = canonical(document)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ConfigurationError(f"the tables take {len(data):,} bytes as JSON; a version holds at most "
                                     f"{MAX_DOCUMENT_BYTES:,}")
        packed = zlib.compress(data, 6)
        pieces = [packed[i:i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)] or [b""]
        number = self._allocate()
        info = VersionInfo(number=number, at=_iso(self._clock()), by=by, action=action,
                           tables=tuple(sorted(document)), digest=hashlib.sha256(data).hexdigest(), size=len(data),
                           rollback_of=rollback_of, effect=dict(effect), source=source)
        try:
            for index, piece in enumerate(pieces):
                self._put({"PK": _chunk_partition(number), "SK": f"CHUNK#{index:04d}", "data": piece})
            self._put({"PK": PARTITION, "SK": _version_key(number), **_record(info), "chunks": len(pieces)},
                      condition="attribute_not_exists(PK)")
            self._switch(number, expected, by)
        except BaseException:
            self._forget(number, len(pieces))
            raise
        return info

    def audit(self, event: str, *, outcome: str, by: str, reason: str = "",
              details: Mapping[str, Any] | None = None) -> None:
        """One audit record of the tables (``AUDIT#<iso time>#<id>`` under ``CONFIG#tables``)."""
        now = self._clock()
        at = _iso(now)
        self._put({"PK": PARTITION, "SK": f"AUDIT#{at}#{uuid.uuid4().hex[:8]}", "event": event, "outcome": outcome,
                   "by": by, "reason": reason, "at": at, "details": dict(details or {}),
                   "expires_at": int(now + self._retention)})

    def _allocate(self) -> int:
        answer = self._call("update_item", Key=self._key(POINTER), UpdateExpression="ADD allocated :one",
                            ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
        return int(answer["Attributes"]["allocated"]["N"])

    def _switch(self, number: int, expected: int | None, by: str) -> None:
        names = {"#v": "version"}
        values = {":n": {"N": str(number)}, ":at": {"S": _iso(self._clock())}, ":by": {"S": by}}
        if expected is None:
            condition = "attribute_not_exists(#v)"
        else:
            condition = "#v = :expected"
            values[":expected"] = {"N": str(expected)}
        try:
            self._call("update_item", Key=self._key(POINTER),
                       UpdateExpression="SET #v = :n, updated_at = :at, updated_by = :by",
                       ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            now = self.current()
            raise VersionConflict(f"version {now} was made current while this one was being stored (expected "
                                  f"{expected if expected is not None else 'none'}); nothing changed: run it again "
                                  "to apply it on top of version " + str(now)) from None

    def _forget(self, number: int, chunks: int) -> None:
        """Remove what a failed publish wrote (best effort: the pointer never named it, so no reader sees it)."""
        try:
            self._call("delete_item", Key=self._key(_version_key(number)))
            for index in range(chunks):
                self._call("delete_item", Key={"PK": {"S": _chunk_partition(number)},
                                               "SK": {"S": f"CHUNK#{index:04d}"}})
        except (ConnectorError, ClientError, BotoCoreError):
            pass

    # --- plumbing ------------------------------------------------------------------------------------------------

    def _key(self, sort_key: str) -> dict[str, Any]:
        return {"PK": {"S": PARTITION}, "SK": {"S": sort_key}}

    def _get(self, sort_key: str, projection: str | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"Key": self._key(sort_key), "ConsistentRead": True}
        if projection:
            kwargs.update(ProjectionExpression="#p", ExpressionAttributeNames={"#p": projection})
        item = self._call("get_item", **kwargs).get("Item")
        return self._plain(item) if item else None

    def _query(self, partition: str, *, begins_with: str | None = None, newest_first: bool = False
               ) -> list[dict[str, Any]]:
        condition = "PK = :pk" + (" AND begins_with(SK, :prefix)" if begins_with else "")
        values = {":pk": {"S": partition}, **({":prefix": {"S": begins_with}} if begins_with else {})}
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition,
                                  "ExpressionAttributeValues": values, "ConsistentRead": True,
                                  "ScanIndexForward": not newest_first}
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("query", **kwargs)
            items.extend(self._plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put(self, item: Mapping[str, Any], condition: str | None = None) -> None:
        kwargs: dict[str, Any] = {"Item": {name: self._serialize(storable(value)) for name, value in item.items()}}
        if condition:
            kwargs["ConditionExpression"] = condition
        self._call("put_item", **kwargs)

    def _call(self, operation: str, **kwargs: Any) -> Any:
        with _transient(f"DynamoDB {operation} on the tables"):
            return getattr(self._client, operation)(TableName=self._table, **kwargs)

    def _plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: plain(self._deserialize(value)) for name, value in item.items()}


@contextmanager
def _transient(what: str) -> Iterator[None]:
    """Around the tables' AWS calls: throttling, a 5xx answer and an unreachable endpoint become ``TransientError``s
    (a running container keeps the tables it has, the work is retried); a refusal of the caller's rights stays AWS's
    own error."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if "Throttl" in code or code in ("ProvisionedThroughputExceededException", "RequestLimitExceeded") \
                or status >= 500:
            raise TransientError(f"{what}: {code or status}") from None
        raise
    except (NetworkError, HTTPClientError) as exc:
        raise TransientError(f"{what}: {exc}") from None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")


def _record(info: VersionInfo) -> dict[str, Any]:
    record = {"number": info.number, "at": info.at, "by": info.by, "action": info.action, "tables": list(info.tables),
              "digest": info.digest, "size": info.size, "effect": dict(info.effect), "source": info.source}
    if info.rollback_of is not None:
        record["rollback_of"] = info.rollback_of
    return record


def _info(item: Mapping[str, Any]) -> VersionInfo:
    return VersionInfo(number=int(item["number"]), at=str(item.get("at", "")), by=str(item.get("by", "")),
                       action=str(item.get("action", "")), tables=tuple(item.get("tables") or ()),
                       digest=str(item.get("digest", "")), size=int(item.get("size", 0)),
                       rollback_of=int(item["rollback_of"]) if item.get("rollback_of") is not None else None,
                       effect=dict(item.get("effect") or {}), source=str(item.get("source", "")))


class ParameterTablesSecret(SecretsManagerText):
    """The secret the template writes the table parameters into, one ``VARIABLE=value`` line each.

    Lambda's environment holds at most 4 KB in all, and the tables alone can need more; a secret holds 64 KB, and
    CloudFormation writes it from the parameters on every stack update (the parameters' patterns keep line breaks out
    of the values). Its content is not secret: it is the table parameters, nothing else."""

    def read(self) -> dict[str, str]:
        with _transient("Secrets Manager get_secret_value of the parameter tables"):
            text = self.read_text()
        return parameter_lines(text, self._secret_id)


def parameter_lines(text: str, source: str) -> dict[str, str]:
    """``VARIABLE=value`` lines as a mapping (blank lines skipped; the value is everything after the first ``=``)."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip().replace("_", "").isalnum():
            raise ConfigurationError(f"the parameter tables in {source} are damaged: line {number} is not "
                                     "VARIABLE=value")
        found[name.strip()] = value
    return found
