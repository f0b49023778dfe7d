"""What every part of the Jira sandbox shares: Jira's fixed vocabulary, the state records, and the wire helpers."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from werkzeug.wrappers import Request, Response

ADF_SCHEMA_PATH = Path(__file__).resolve().parents[3] / "specs" / "adf-schema-v1-full.json"

CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = {  # name -> (id, category key, id of the global transition into it, transition name)
    "To Do": ("10000", "new", "11", "Reopen"),
    "In Progress": ("3", "indeterminate", "21", "Start progress"),
    "Done": ("10001", "done", "31", "Done"),
    "Won't Do": ("10002", "done", "41", "Won't do"),
    "Blocked": ("10003", "indeterminate", "51", "Block"),
    "Closed": ("10004", "done", "61", "Close"),
}
RESOLUTIONS = {"Done": "10000", "Won't Do": "10001", "Duplicate": "10002", "Cannot Reproduce": "10003"}
"""Jira Cloud's default resolutions (``GET /resolution``)."""
PROJECT_STYLES = ("company-managed", "team-managed")
"""How a move into a done status gets its resolution: company-managed, the person picks it on the transition screen
(by default named like the status when such a resolution exists, else Done); team-managed projects have no
resolution screen and always set Done, whatever the status, so a "no" there is a status (Won't Do)."""
ISSUE_TYPES = {"Task": "10001", "Bug": "10002"}
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
"""Jira Cloud's default priority scheme (ids 1-5); a project's scheme may hold other names, and Jira refuses any
priority outside it with ``errors.priority``."""
DEFAULT_PRIORITY = "Medium"
LINK_TYPES = {  # Jira Cloud's default issue link types: name -> (id, inward, outward)
    "Blocks": ("10000", "is blocked by", "blocks"),
    "Cloners": ("10001", "is cloned by", "clones"),
    "Duplicate": ("10002", "is duplicated by", "duplicates"),
    "Relates": ("10003", "relates to", "relates to"),
}
WEBHOOK_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created",
                  "comment_updated", "comment_deleted", "issue_property_set", "issue_property_deleted")
WEBHOOK_LIFETIME = timedelta(days=30)
RETRIED_DELIVERY_STATUSES = frozenset({408, 409, 425, 429})
CONNECTOR_ACCOUNT = "557058:0c0ffee0-acu-jira-connector"
PERSON_ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"
AUTOMATION_ACCOUNT = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
"""Automation for Jira: an ``app`` account present on every Jira Cloud site; its rules move issues."""
USER_SCOPE = "read:jira-user"
"""The classic scope ``GET /user/groups``, ``/group/bulk`` and ``/user`` require (OpenAPI ``x-atlassian-oauth2-scopes``)."""
DEFAULT_SCOPES = ("read:jira-work", "write:jira-work", "manage:jira-webhook", USER_SCOPE, "offline_access")
SEARCH_GONE = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration "
               "guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")


JOURNAL_LIMIT = 10_000
"""Exchanges and deliveries kept for inspection; a long ``connector local`` run must not grow without bound."""


class JqlError(Exception):
    """A JQL query Jira would refuse; the message is Jira's own wording."""


class HttpError(Exception):
    """Ends a request with ``status`` and a JSON body (Jira's ``ErrorCollection`` unless given)."""

    def __init__(self, status: int, messages: Iterable[str] = (), errors: Mapping[str, str] | None = None, *,
                 body: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body if body is not None else {"errorMessages": list(messages), "errors": dict(errors or {})}
        self.headers = dict(headers or {})


@dataclass
class Fault:
    remaining: int
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path_contains is None or self.path_contains in path)


@dataclass
class Issue:
    id: int
    key: str
    fields: dict[str, Any]
    comments: list[dict[str, Any]] = field(default_factory=list)
    changelog: list[dict[str, Any]] = field(default_factory=list)
    indexed_at: float = 0.0
    index_snapshot: dict[str, Any] | None = None


@dataclass
class Delivery:
    identifier: str
    url: str
    body: bytes
    kind: str  # "admin" or "dynamic"
    secret: str = ""
    webhook_ids: tuple[int, ...] = ()



# --- helpers ----------------------------------------------------------------------------------------------------------

def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json;charset=UTF-8")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _json_body(request: Request) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise HttpError(415, ["Content-Type must be application/json."])
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise HttpError(400, ["The request body is not a JSON object."])
    return body


def _jira_time(epoch: float) -> str:
    """``2024-05-01T10:00:00.000+00:00``: Jira's millisecond timestamps, with the RFC 3339 offset the spec demands
    (real Jira writes ``+0000``; clients must accept both)."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def _jql_time(value: str, moment: float) -> float:
    """``-15m``/``-2h``/``-1d``/``-1w`` relative to ``moment``, or ``yyyy-MM-dd[ HH:mm]`` (UTC)."""
    relative = re.fullmatch(r"([-+]?)(\d+)([mhdw])", value.strip())
    if relative:
        seconds = int(relative.group(2)) * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[relative.group(3)]
        return moment - seconds if relative.group(1) == "-" else moment + seconds
    for pattern in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(value.strip(), pattern).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise JqlError(f"Date value '{value}' is invalid. Valid formats include 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd', or a "
                   f"period such as '-5d'.")


def _read_page_token(token: str, fingerprint: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if decoded["q"] != fingerprint:
            raise ValueError
        return int(decoded["o"])
    except (ValueError, KeyError, TypeError):
        raise HttpError(400, ["The nextPageToken is invalid or belongs to another query."]) from None


def _adf_has_text(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "text" and node.get("text"):
            return True
        if node.get("type") in ("mention", "emoji", "inlineCard", "status", "date"):
            return True
        return any(_adf_has_text(child) for child in node.get("content") or [])
    return False


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _display(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "(document)" if value.get("type") == "doc" else json.dumps(value)
    return str(value)
