"""webhook: ``accept_jira_delivery`` on a realistic signed ``jira:issue_updated`` body of about 20 KB.

Jira sends the whole issue with every update (description and comments in ADF, users, the project, dozens of custom
fields, mostly null), so the body is built from ``events/jira-webhook.json`` grown into that shape. Measured: the
accepted path (HMAC over the raw body, JSON parse, resolution), the ignored path (a move that does not resolve), and
the rejection of a bad signature, which must be decided before any parsing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench import Result
from connector.errors import Rejected
from connector.signatures import sign_hub
from connector.webhooks import accept_jira_delivery

EVENT = Path(__file__).resolve().parents[1] / "events" / "jira-webhook.json"
WEBHOOK_SECRET = "bench-webhook-secret"
EXTERNAL_ID_FIELD = "customfield_10050"


@dataclass(frozen=True)
class Config:
    deliveries: int = 5_000
    body_bytes: int = 20_000
    repeats: int = 3


DEFAULT = Config()
QUICK = Config(deliveries=1_000, repeats=2)


def _user(account_id: str, name: str) -> dict[str, Any]:
    return {"self": f"https://acme.atlassian.net/rest/api/2/user?accountId={account_id}", "accountId": account_id,
            "avatarUrls": {size: f"https://secure.gravatar.com/avatar/{account_id[-12:]}?d=mm&s={size[:2]}"
                           for size in ("48x48", "24x24", "16x16", "32x32")},
            "displayName": name, "active": True, "timeZone": "Europe/Berlin", "accountType": "atlassian"}


def _paragraph(text: str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": text}]}


def issue_updated_body(target_bytes: int, *, to_status: str = "Done", category: str = "done") -> bytes:
    """A compact-JSON ``jira:issue_updated`` delivery of at least ``target_bytes``, as Jira would post it."""
    payload = json.loads(json.loads(EVENT.read_text())["body"])
    fields = payload["issue"]["fields"]
    clerk, approver = _user("5b10ac8d82e05b22cc7d4ef5", "Alana Grant"), _user("712020:9c1f4e2a", "Priya Raman")
    fields["status"]["name"] = to_status
    fields["status"]["statusCategory"]["key"] = category
    payload["changelog"]["items"][0]["toString"] = to_status
    fields.update({
        "assignee": clerk, "reporter": approver, "creator": approver,
        "priority": {"self": "https://acme.atlassian.net/rest/api/2/priority/3", "name": "Medium", "id": "3"},
        "created": "2024-11-20T09:02:11.120+0100", "resolutiondate": "2024-11-24T11:15:30.091+0100",
        "resolution": {"self": "https://acme.atlassian.net/rest/api/2/resolution/10000", "id": "10000",
                       "name": "Done", "description": "Work has been completed on this issue."},
        "watches": {"self": "https://acme.atlassian.net/rest/api/2/issue/AP-7/watchers", "watchCount": 2,
                    "isWatching": False},
        "votes": {"self": "https://acme.atlassian.net/rest/api/2/issue/AP-7/votes", "votes": 0, "hasVoted": False},
        "attachment": [], "subtasks": [], "issuelinks": [], "components": [], "fixVersions": [], "versions": [],
        "timetracking": {}, "worklog": {"startAt": 0, "maxResults": 20, "total": 0, "worklogs": []},
        **{f"customfield_{10000 + n}": None for n in range(60) if n != 50},
    })
    fields["comment"] = {"comments": [], "maxResults": 0, "total": 0, "startAt": 0}
    description: list[dict[str, Any]] = []
    fields["description"] = {"type": "doc", "version": 1, "content": description}
    line = 0
    while len(raw := json.dumps(payload, separators=(",", ":")).encode()) < target_bytes:
        line += 1
        text = (f"Bill 000123 from Acme Office Supplies is on hold: control amount 1,250.00 USD differs from the "
                f"document total 1,237.50 USD (check {line}).")
        if line % 4:
            description.append(_paragraph(text))
        else:
            fields["comment"]["comments"].append({
                "self": f"https://acme.atlassian.net/rest/api/2/issue/10042/comment/{10100 + line}",
                "id": str(10100 + line), "author": clerk, "updateAuthor": clerk,
                "body": {"type": "doc", "version": 1, "content": [_paragraph(text)]},
                "created": "2024-11-21T10:00:00.000+0100", "updated": "2024-11-21T10:00:00.000+0100",
                "jsdPublic": True})
            fields["comment"]["maxResults"] = fields["comment"]["total"] = len(fields["comment"]["comments"])
    return raw


def _headers(raw: bytes, signature: str) -> dict[str, str]:
    """What API Gateway hands the function: lower-case header names."""
    return {"content-type": "application/json; charset=utf-8", "content-length": str(len(raw)),
            "user-agent": "Atlassian Webhook HTTP Client", "x-atlassian-webhook-identifier": "1732443330123456",
            "x-atlassian-webhook-flow": "Primary", "x-hub-signature": signature}


def _accept(raw: bytes, headers: dict[str, str]) -> Any:
    """The message a delivery becomes (``None``: ignored), or the ``Rejected`` that refused it."""
    try:
        return accept_jira_delivery(raw, headers, webhook_secret=WEBHOOK_SECRET, client_secret="unused",
                                    external_id_field=EXTERNAL_ID_FIELD, resolved_statuses=(),
                                    correlation_id="bench")[1]
    except Rejected as rejected:
        return rejected


def _rate(call: Callable[[], Any], count: int, repeats: int) -> tuple[float, float]:
    best = float("inf")
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        for _ in range(count):
            call()
        best = min(best, time.perf_counter() - started)
    return count / best, best / count * 1e6


def run(config: Config) -> Result:
    resolved = issue_updated_body(config.body_bytes)
    in_progress = issue_updated_body(config.body_bytes, to_status="In Progress", category="indeterminate")
    good = _headers(resolved, sign_hub(WEBHOOK_SECRET, resolved))
    ignored = _headers(in_progress, sign_hub(WEBHOOK_SECRET, in_progress))
    signature = good["x-hub-signature"]
    forged = {**good, "x-hub-signature": signature[:-1] + ("0" if signature[-1] != "0" else "1")}

    result = Result("webhook", f"accept_jira_delivery on a signed {len(resolved):,}-byte jira:issue_updated body, "
                               f"{config.deliveries:,} deliveries, best of {config.repeats}")
    for name, raw, headers, note in (
        ("accepted (resolved -> resolve message)", resolved, good, "HMAC + JSON parse + resolution"),
        ("ignored (moved to In Progress)", in_progress, ignored, "HMAC + JSON parse, nothing queued"),
        ("rejected (bad signature -> 401)", resolved, forged, "HMAC only: refused before parsing"),
    ):
        rate, micros = _rate(lambda: _accept(raw, headers), config.deliveries, config.repeats)
        result.add(name, rate, "deliveries/s", f"{micros:.0f} µs each; {note}")

    message = _accept(resolved, good)
    result.check("a resolving delivery becomes one resolve message",
                 getattr(message, "kind", None) == "resolve" and message.external_id == "Bill:Bill:000123",
                 repr(message)[:120])
    result.check("a move that does not resolve is ignored", _accept(in_progress, ignored) is None)
    refusal = _accept(resolved, forged)
    result.check("a bad signature is refused with 401", isinstance(refusal, Rejected) and refusal.status == 401,
                 str(refusal))
    return result
