"""`connector sandbox resolve`: act as a person in the Jira sandbox of a running `connector local`.

A person finds an issue by the document it is about, not by a key that differs from run to run, so the command takes
an external id (``Bill:Bill:000101``), finds that document's issue the way someone would in Jira's search, and moves
it; an issue key is accepted too. The sandbox delivers the signed webhook to the local gateway as Jira would; the
command then waits (``--wait``) until the connector's audit trail shows what it decided, and prints that, so a
walkthrough can show the outcome on the next line instead of asking the reader to wait and look.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Mapping, TextIO

from connector.errors import ConfigurationError

from .output import print_line, print_table


class SandboxRefused(Exception):
    """The sandbox could not do what was asked (no such issue, several candidates); one line, exit 1."""


def resolve(env: Mapping[str, str], wiring: Any, target: str, *, status: str, wait_seconds: int, fmt: str,
            resolution: str | None = None, out: TextIO | None = None) -> int:
    import requests

    out = out or sys.stdout
    jira_url = env.get("JIRA_API_URL", "")
    if not jira_url.startswith("http://127.0.0.1"):
        raise ConfigurationError("JIRA_API_URL must point at the Jira sandbox of `connector local` (load the "
                                 "environment file it writes, e.g. `. ./.local.env`)")
    key = _issue_of(requests, jira_url, target) if ":" in target else target
    moved_at = datetime.now(timezone.utc)
    answer = requests.post(f"{jira_url}/sandbox-ui/issue/{key}/transition", timeout=10,
                           json={"status": status, **({"resolution": resolution} if resolution else {})})
    if answer.status_code != 200:
        raise SandboxRefused(f"the Jira sandbox answered {answer.status_code} to moving {key}: {answer.text[:200]}")
    document = target if ":" in target else _document_of(wiring, key)
    records = _await_decision(wiring, document, moved_at, wait_seconds) if document and wait_seconds else []
    if fmt == "json":
        print(json.dumps({"issue": key, "document": document, "status": status, "audit": records}, indent=2,
                         default=str), file=out)
        return 0
    print_line(f"{key}{f' ({document})' if document else ''} moved to {status} by a person; the signed webhook went "
               "to the local gateway.", out=out)
    if records:
        print_table(("at", "event", "outcome", "reason"),
                    [(r["at"], r["event"], r["outcome"], r.get("reason", "")) for r in records], out=out,
                    title="What the connector did, from its audit trail:")
    elif document and wait_seconds:
        print_line(f"The connector has not decided within {wait_seconds} s; `connector audit {document}` shows what "
                   "it does next.", out=out)
    return 0


def _issue_of(requests: Any, jira_url: str, external_id: str) -> str:
    answer = requests.get(f"{jira_url}/sandbox-ui/issues", params={"externalId": external_id}, timeout=10)
    answer.raise_for_status()
    found = answer.json()
    if not found:
        raise SandboxRefused(f"no issue in the Jira sandbox carries {external_id} (is it an exception? "
                             f"`connector audit {external_id}` shows what the connector did with it)")
    if len(found) > 1:
        raise SandboxRefused(f"several issues carry {external_id} ({', '.join(i['key'] for i in found)}); "
                             "name the one to resolve by its key")
    return str(found[0]["key"])


def _document_of(wiring: Any, issue_key: str) -> str | None:
    key = wiring.store.document_for_issue(issue_key)
    return key.external_id if key else None


def _await_decision(wiring: Any, external_id: str, since: datetime, wait_seconds: int) -> list[dict[str, Any]]:
    """The audit records written since ``since``, once one of them is the worker's ``resolve`` outcome (or
    whatever there is when ``wait_seconds`` have passed)."""
    from connector.model import DocumentKey

    key = DocumentKey.parse(external_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        records = [r for r in wiring.store.audit_trail(key) if datetime.fromisoformat(r["at"]) >= since]
        if any(r["event"] == "resolve" for r in records) or time.monotonic() >= deadline:
            return records
        time.sleep(0.5)
