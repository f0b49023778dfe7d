"""What an identifier that came from outside may look like before it goes into a URL path, a queue or a key.

Pure rules, shared by the webhook (which refuses a body whose ids do not fit, with 400) and the Jira client (which
never puts anything else into ``/issue/{id}``): a signed body is authentic, not necessarily well-meant, and an issue
"id" of ``../../myself`` would otherwise reach another API path with the connector's bearer token.
"""

from __future__ import annotations

import re
from urllib.parse import quote

MAX_ISSUE_KEY = 64
"""Jira project keys are at most 10 characters by default (255 at most by configuration); 64 bounds what is queued."""
ISSUE_ID = re.compile(r"[0-9]{1,18}")
ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]+-[0-9]{1,18}")
CHANGELOG_ID = re.compile(r"[0-9]{1,18}")


def is_issue_id(value: object) -> bool:
    return isinstance(value, str) and ISSUE_ID.fullmatch(value) is not None


def is_issue_key(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_ISSUE_KEY and ISSUE_KEY.fullmatch(value) is not None


def issue_segment(key_or_id: str) -> str:
    """``key_or_id`` as one path segment of ``/issue/{issueIdOrKey}``; ``ValueError`` for anything but an issue id
    (digits) or key (``AP-12``), so nothing else can ever reach a Jira path. Quoted as well, for the record."""
    if not (is_issue_id(key_or_id) or is_issue_key(key_or_id)):
        raise ValueError(f"not a Jira issue id or key: {key_or_id[:80]!r}" if isinstance(key_or_id, str)
                         else f"not a Jira issue id or key: a {type(key_or_id).__name__}")
    return quote(key_or_id, safe="")
