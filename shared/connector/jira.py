"""Jira Cloud, as the connector uses it: OAuth 2.0 (3LO) tokens, issues, JQL search, transitions and dynamic webhooks.

Quirks of Jira live here and nowhere else:
- 3LO calls go to ``<JiraApiUrl>/ex/jira/<cloudId>/rest/api/3/...``, never to the site URL; the cloud id is resolved
  once, at connect time, from ``accessible-resources`` by matching the site URL (that list has no order).
- Refresh tokens rotate and are single-use; ``jira_token_obtainer`` is the refresh call that
  ``connector.tokens.RotatingTokens`` runs under its cluster-wide lock. A dead grant (``invalid_grant``) is a
  ``ReconnectNeeded`` plus a CloudWatch metric, because only a person can fix it.
- Search is ``POST /search/jql`` with ``nextPageToken`` paging (the old ``/search`` answers 410) and is eventually
  consistent: ids of issues created moments ago go in ``reconcileIssues``. The external-id field is a text field,
  so JQL can only do a token match (``~``) on it; every result is checked for the exact value.
- Descriptions and comments are ADF (``connector.adf``); the external-id field is a single-line text field and takes
  a plain string.
- Transitions are found by their target status name or status category, never by a hard-coded id.

Retries (429 with ``Retry-After`` as a minimum, backoff with jitter, 5xx on idempotent calls) are the session's job
(``connector.http``); what is left after them becomes a typed error from ``connector.errors``. Tokens never reach
logs or messages.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import requests

from . import timings
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    ReconnectNeeded,
    TransientError,
    UncertainOutcome,
    ValidationError,
)
from .adf import plain_text
from .http import make_session, redirect_refused, retry_after_seconds, transport_error
from .ids import issue_segment
from .ports import IssueComment, IssueDraft, IssueRef, StatusChange
from .tokens import ObtainTokens

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timings.JIRA_TIMEOUT
"""(connect, read) seconds for every call."""

SEARCH_PAGE_SIZE = 50
MAX_RECONCILE_IDS = 50
"""Jira accepts at most 50 issue ids in ``reconcileIssues``."""
COMMENTS_READ = 50
"""Comments read when looking for the note a person left with a decision: the newest ones are what matter."""

SUMMARY_LIMIT = 255
WEBHOOK_EVENTS = ("jira:issue_updated",)
WEBHOOK_FIELDS = ("status",)
METRICS_NAMESPACE = "AcumaticaJiraConnector"
RECONNECT_METRIC = "JiraReconnectNeeded"
RECONNECT_HINT = "run `connector connect jira` to authorise the connector again"
SCOPE_MISMATCH = "scope does not match"
"""Jira's 401 message when the grant lacks the scope an operation needs: refreshing the token cannot fix it."""
USER_SCOPE_HINT = ("group membership needs the read:jira-user scope: add it to the Jira app and run "
                   "`connector connect jira` again (its consent asks for it)")


class AccessTokens(Protocol):
    """What the client needs from ``connector.tokens.RotatingTokens``."""

    def access_token(self) -> str:
        ...

    def invalidate(self, token: str) -> None:
        ...


# --- OAuth 2.0 (3LO) --------------------------------------------------------------------------------------------------


def jira_token_obtainer(
    auth_url: str,
    session: requests.Session,
    *,
    metrics_namespace: str = METRICS_NAMESPACE,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> ObtainTokens:
    """The refresh call for ``RotatingTokens``: a JSON ``refresh_token`` grant against ``<auth_url>/oauth/token``.

    Returns ``access_token``, the rotated ``refresh_token`` (an answer without one is ``ReconnectNeeded``: the used
    one is spent) and ``expires_at`` in epoch seconds. ``invalid_grant`` means the rotation chain is dead (expired,
    revoked, or an old token was replayed): ``ReconnectNeeded``, after counting it as a metric so an alarm can tell a
    person.
    """
    token_url = f"{auth_url.rstrip('/')}/oauth/token"

    def obtain(secret: Mapping[str, Any]) -> Mapping[str, Any]:
        missing = [name for name in ("client_id", "client_secret") if not secret.get(name)]
        if missing:
            raise ConfigurationError(f"the Jira secret lacks {', '.join(missing)}; {RECONNECT_HINT}")
        if not secret.get("refresh_token"):
            _count_reconnect_needed(metrics_namespace)
            raise ReconnectNeeded(f"the Jira secret holds no refresh token; {RECONNECT_HINT}")
        body = {
            "grant_type": "refresh_token",
            "client_id": secret["client_id"],
            "client_secret": secret["client_secret"],
            "refresh_token": secret["refresh_token"],
        }
        response = _post_token_endpoint(session, token_url, body, timeout)
        if response.status_code == 200:
            issued = _issued_tokens(response, previous_refresh_token="")
            if not issued["refresh_token"] or issued["refresh_token"] == secret["refresh_token"]:
                # Rotation is always on: the token just used is spent, and keeping it would fail at the next refresh
                # (or, replayed after the leeway, revoke the grant). Say so now instead.
                _count_reconnect_needed(metrics_namespace)
                raise ReconnectNeeded("Jira answered the refresh without a new refresh token; the one used is spent "
                                      f"and is not kept; {RECONNECT_HINT}")
            return issued
        error = _oauth_error(response)
        if response.status_code in (400, 403) and error == "invalid_grant":
            _count_reconnect_needed(metrics_namespace)
            logger.error("Jira refused the refresh token (invalid_grant): the authorisation must be renewed")
            raise ReconnectNeeded(
                f"Jira refused the refresh token (invalid_grant): the authorisation expired, was revoked, or an old "
                f"refresh token was reused; {RECONNECT_HINT}"
            )
        raise _token_endpoint_error(response, error, "refreshing the Jira access token")

    return obtain


def exchange_authorization_code(
    auth_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    session: requests.Session,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Trade the code from the consent redirect for the first tokens (``connector connect jira``).

    Returns ``access_token``, ``refresh_token``, ``expires_at`` and ``scope``. A refresh token is only issued when
    the consent asked for the ``offline_access`` scope; without it the connector could not keep working.
    """
    body = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    response = _post_token_endpoint(session, f"{auth_url.rstrip('/')}/oauth/token", body, timeout)
    if response.status_code != 200:
        error = _oauth_error(response)
        if error == "invalid_grant":
            raise AuthenticationError(
                "Jira refused the authorization code (invalid_grant): codes are single-use, expire within minutes "
                "and must come with the same redirect URI; start `connector connect jira` again"
            )
        raise _token_endpoint_error(response, error, "exchanging the Jira authorization code")
    payload = _json(response, "the Jira token endpoint")
    if not payload.get("refresh_token"):
        raise ConfigurationError("Jira issued no refresh token: the consent must request the offline_access scope")
    tokens = dict(_issued_tokens(response, previous_refresh_token=""))
    tokens["scope"] = str(payload.get("scope") or "")
    return tokens


def accessible_sites(
    api_url: str,
    access_token: str,
    session: requests.Session,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> list[Mapping[str, Any]]:
    """The sites a grant reaches (``GET /oauth/token/accessible-resources``: ``id`` is the cloudId, ``url``, ``name``,
    ``scopes``), in the order Atlassian answered, which is no order at all."""
    url = f"{api_url.rstrip('/')}/oauth/token/accessible-resources"
    try:
        response = session.get(url, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                               timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise TransientError(f"could not reach Jira accessible-resources: {type(exc).__name__}") from exc
    refused = redirect_refused("Jira", "JiraApiUrl", response)
    if refused is not None:
        raise refused
    if response.status_code in (401, 403):
        raise AuthenticationError(f"Jira refused the access token for accessible-resources ({response.status_code})")
    if response.status_code != 200:
        raise _status_error(response, "GET", "/oauth/token/accessible-resources")
    resources = _json(response, "Jira accessible-resources")
    if not isinstance(resources, list):
        raise PermanentError("Jira accessible-resources did not answer a list")
    return [r for r in resources if isinstance(r, Mapping) and r.get("id")]


def site_cloud_id(sites: Sequence[Mapping[str, Any]], site_url: str) -> str:
    """The cloudId of ``site_url`` among ``sites`` (matched by URL); with no site named, only an unambiguous grant
    may choose, since a guess would point the connector at another team's Jira."""
    if not site_url:
        if len(sites) == 1:
            return str(sites[0]["id"])
        raise ConfigurationError(
            "this authorisation reaches several Jira sites ("
            + ", ".join(sorted(str(r.get("url")) for r in sites))
            + "); set JiraSiteUrl to the one the connector should use"
        )
    wanted = _normalise_site(site_url)
    for site in sites:
        if _normalise_site(str(site.get("url", ""))) == wanted:
            return str(site["id"])
    raise ConfigurationError(
        f"the Jira site {site_url} is not among the sites this authorisation reaches: "
        f"{', '.join(sorted(str(r.get('url')) for r in sites)) or 'none'}; "
        f"authorise that site with `connector connect jira` or correct the site URL"
    )


def resolve_cloud_id(
    api_url: str,
    access_token: str,
    site_url: str,
    session: requests.Session,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> str:
    """The cloud id of ``site_url`` among the sites the grant reaches."""
    return site_cloud_id(accessible_sites(api_url, access_token, session, timeout=timeout), site_url)


# --- JQL --------------------------------------------------------------------------------------------------------------

_JQL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_jql_string(value: str) -> str:
    """Escape ``value`` for the inside of a double-quoted JQL string (backslash, quote, line breaks, tab)."""
    return "".join(_JQL_ESCAPES.get(char, char) for char in value)


def external_id_jql(project_key: str, field_number: str | int, external_id: str) -> str:
    """``project = "KEY" AND cf[N] ~ "\\"<external id>\\""``: a phrase match of the id's tokens in the text field.

    Two layers of escaping: the id is first a Lucene phrase (``"`` and ``\\`` escaped with a backslash), and that
    phrase is then a JQL string. ``~`` is still a token match (``Bill:Bill:1`` also matches ``Bill-Bill-1``), so
    callers must compare the field's exact value on each result.
    """
    number = str(field_number).removeprefix("customfield_")
    if not number.isdigit():
        raise ValueError(f"not a custom field number: {field_number!r}")
    if not external_id:
        raise ValueError("an external id is required")
    phrase = '"' + external_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f'project = "{escape_jql_string(project_key)}" AND cf[{number}] ~ "{escape_jql_string(phrase)}"'


USER_BULK_BATCH = 50
"""accountIds per ``GET /user/bulk``: 50 of Jira's longest (128 characters) keep the URL under 8 KB."""


# --- the client -------------------------------------------------------------------------------------------------------


class JiraClient:
    """The ``IssueTracker`` port on Jira Cloud, plus the webhook and health calls the CLI and maintenance need."""

    def __init__(
        self,
        *,
        api_url: str,
        cloud_id: str,
        project_key: str,
        issue_type: str = "Task",
        external_id_field: str = "customfield_10050",
        tokens: AccessTokens,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cloud_id:
            raise ConfigurationError(f"the Jira cloud id is not set; {RECONNECT_HINT}")
        number = external_id_field.removeprefix("customfield_")
        if not external_id_field.startswith("customfield_") or not number.isdigit():
            raise ConfigurationError(
                f"the external-id field must look like customfield_10050, got {external_id_field!r}")
        self._base = f"{api_url.rstrip('/')}/ex/jira/{cloud_id}/rest/api/3"
        self._project_key = project_key
        self._issue_type = issue_type
        self._field = external_id_field
        self._field_number = number
        self._tokens = tokens
        self._session = session or make_session()
        self._timeout = timeout
        self._account_id: str | None = None
        self._categories: dict[str, str] = {}
        self._clock = clock
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def __repr__(self) -> str:
        return f"JiraClient(base={self._base!r}, project={self._project_key!r})"

    # IssueTracker ---------------------------------------------------------------------------------------------------

    def find_by_external_id(self, external_id: str, reconcile_ids: Sequence[str] = ()) -> IssueRef | None:
        """The issue whose external-id field equals ``external_id`` exactly; the oldest one if Jira holds several."""
        jql = external_id_jql(self._project_key, self._field_number, external_id)
        matches = [
            issue
            for issue in self.search_issues(jql, fields=(self._field, "status", "summary", "creator"),
                                            reconcile_ids=reconcile_ids)
            if issue.external_id == external_id
        ]
        if not matches:
            return None
        if len(matches) > 1:
            logger.warning("several Jira issues carry external id %s: %s; using the oldest",
                           external_id, ", ".join(issue.key for issue in matches))
        return min(matches, key=lambda issue: (len(issue.id), issue.id))  # numeric ids: shorter is older

    def get_issue(self, key: str) -> IssueRef | None:
        path = _issue_path(key)
        response = self._call("GET", path,
                              params={"fields": f"status,resolution,summary,creator,labels,assignee,{self._field}"})
        if response.status_code == 404:
            return None
        return self._issue_ref(self._ok(response, "GET", path))

    def create_issue(self, draft: IssueDraft) -> IssueRef:
        """Create the issue; a timeout after sending is ``UncertainOutcome`` (settle it by searching, not resending)."""
        if not draft.summary:
            raise ValidationError("a Jira issue needs a summary", {"summary": "required"})
        fields = {"project": {"key": self._project_key}, "issuetype": {"name": self._issue_type},
                  **self._fields_of(draft)}
        created = self._created(self._call("POST", "/issue", json={"fields": fields}), "/issue",
                                "the issue may have been created: search before creating again")
        logger.info("created Jira issue %s", created.get("key"))
        return IssueRef(id=str(created["id"]), key=str(created["key"]), external_id=draft.external_id,
                        fields={k: v for k, v in fields.items() if k not in ("project", "issuetype")})

    def update_issue(self, key: str, draft: IssueDraft) -> None:
        fields = self._fields_of(draft)
        if fields:
            path = _issue_path(key)
            self._ok(self._call("PUT", path, json={"fields": fields}), "PUT", path, expected=(204, 200))

    def link_issues(self, inward_key: str, outward_key: str, link_type: str = "Relates") -> None:
        """``POST /issueLink``; Jira keeps one link of a type between two issues, so a repeat adds nothing."""
        body = {"type": {"name": link_type}, "inwardIssue": {"key": inward_key}, "outwardIssue": {"key": outward_key}}
        self._ok(self._call("POST", "/issueLink", json=body), "POST", "/issueLink", expected=(201, 200))

    def add_label(self, key: str, label: str) -> None:
        """``update.labels[].add``: a ``fields.labels`` set would drop the labels people added."""
        path = _issue_path(key)
        self._ok(self._call("PUT", path, json={"update": {"labels": [{"add": "-".join(label.split())}]}}), "PUT",
                 path, expected=(204, 200))

    def add_comment(self, key: str, body: dict[str, Any]) -> str:
        path = _issue_path(key, "comment")
        return str(self._created(self._call("POST", path, json={"body": body}), path,
                                 "the comment may have been added: do not post it again blindly")["id"])

    def transition_to(self, key: str, status_name: str) -> bool:
        """Move the issue to ``status_name`` (case-insensitive) through whichever transition leads there."""
        wanted = status_name.strip().casefold()
        return self._transition(key, lambda to: str(to.get("name", "")).casefold() == wanted)

    def transition_to_category(self, key: str, category_key: str) -> bool:
        """Move the issue into a status of category ``category_key`` (``new``, ``indeterminate``, ``done``)."""
        wanted = category_key.strip().casefold()
        return self._transition(
            key, lambda to: str((to.get("statusCategory") or {}).get("key", "")).casefold() == wanted
        )

    def status_changes(self, key: str) -> list[StatusChange]:
        """Status moves from ``GET /issue/{key}/changelog`` (oldest first, ``startAt`` paging), with the category of
        each side: who moved the issue, from what, to what, as Jira recorded it (the issue's current fields cannot
        tell a person's resolution from the connector's own move, or Done → Closed from To Do → Done)."""
        path = _issue_path(key, "changelog")
        changes: list[StatusChange] = []
        start = 0
        while True:
            page = self._ok(self._call("GET", path, params={"startAt": start, "maxResults": 100}), "GET", path)
            values = page.get("values") or []
            for entry in values:
                for item in entry.get("items") or []:
                    if (item.get("fieldId") or item.get("field")) != "status":
                        continue
                    author = entry.get("author") if isinstance(entry.get("author"), Mapping) else {}
                    changes.append(StatusChange(
                        id=str(entry.get("id", "")),
                        author_account_id=str(author.get("accountId") or ""),
                        created=str(entry.get("created") or ""),
                        from_status=str(item.get("fromString") or ""), to_status=str(item.get("toString") or ""),
                        from_category=self._category_of(item.get("from"), item.get("fromString")),
                        to_category=self._category_of(item.get("to"), item.get("toString")),
                        author_account_type=str(author.get("accountType") or ""),
                        author_active=author.get("active") is True, author_name=str(author.get("displayName") or ""),
                        resolution=_resolution_set(entry.get("items") or [])))
            start += len(values)
            if page.get("isLast", True) or not values:
                return changes

    def recent_comments(self, key: str) -> list[IssueComment]:
        """The issue's newest comments (one page of up to ``COMMENTS_READ``, ``orderBy=-created``), oldest first,
        with their bodies as plain text: the return flow looks for the note a person left with a decision."""
        path = _issue_path(key, "comment")
        page = self._ok(self._call("GET", path, params={"orderBy": "-created", "maxResults": COMMENTS_READ}),
                        "GET", path)
        found = [IssueComment(id=str(comment.get("id", "")),
                              author_account_id=str((comment.get("author") or {}).get("accountId") or ""),
                              created=str(comment.get("created") or ""),
                              text=plain_text(comment.get("body") if isinstance(comment.get("body"), Mapping) else None))
                 for comment in page.get("comments") or [] if isinstance(comment, Mapping)]
        return sorted(found, key=lambda comment: _instant(comment.created))

    def own_account_id(self) -> str:
        """The connector's accountId, read once per container from ``/myself`` (it never changes for a grant)."""
        if self._account_id is None:
            account = str(self.myself().get("accountId") or "")
            if not account:
                raise PermanentError("Jira /myself answered without an accountId")
            self._account_id = account
        return self._account_id

    def user_groups(self, account_id: str) -> frozenset[str]:
        """``GET /user/groups?accountId=``: the names of the person's groups, cached per container for
        ``timings.GROUP_MEMBERSHIP_CACHE_SECONDS``. An account Jira does not know (404) belongs to none. Needs the
        ``read:jira-user`` scope: without it, a ``ConfigurationError`` saying so (no token refresh can fix that)."""
        cached = self._groups.get(account_id)
        if cached is not None and self._clock() - cached[0] < timings.GROUP_MEMBERSHIP_CACHE_SECONDS:
            return cached[1]
        response = self._call("GET", "/user/groups", params={"accountId": account_id})
        if response.status_code == 404:
            names: frozenset[str] = frozenset()
        else:
            answer = self._ok(response, "GET", "/user/groups")
            names = frozenset(str(group["name"]) for group in answer or []
                              if isinstance(group, Mapping) and group.get("name"))
        self._groups[account_id] = (self._clock(), names)
        return names

    def existing_groups(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are groups on the site (``GET /group/bulk?groupName=...``, every page), as Jira spells
        them; for ``ping``, which names a ``DecisionAuthority`` key that matches no group."""
        wanted = list(dict.fromkeys(names))
        found: set[str] = set()
        start = 0
        while wanted:
            params: dict[str, Any] = {"groupName": wanted, "startAt": start, "maxResults": 50}
            page = self._ok(self._call("GET", "/group/bulk", params=params), "GET", "/group/bulk")
            values = page.get("values") or []
            found.update(str(group.get("name")) for group in values if isinstance(group, Mapping))
            start += len(values)
            if page.get("isLast", True) or not values:
                break
        return found

    def user(self, account_id: str) -> dict[str, Any] | None:
        """``GET /user?accountId=``: the account (``accountType``, ``active``, ``displayName``), or ``None``."""
        response = self._call("GET", "/user", params={"accountId": account_id})
        if response.status_code == 404:
            return None
        return self._ok(response, "GET", "/user")

    def _category_of(self, status_id: Any, status_name: Any) -> str:
        """The status category key of a changelog status (by id, else by name), from ``GET /status`` (cached; read
        again once when a status is unknown, since admins add statuses)."""
        wanted = [str(v).casefold() for v in (status_id, status_name) if v]
        if not wanted:
            return ""
        for attempt in range(2):
            found = next((self._categories[w] for w in wanted if w in self._categories), None)
            if found is not None or attempt:
                return found or ""
            for status in self._ok(self._call("GET", "/status"), "GET", "/status") or []:
                category = str((status.get("statusCategory") or {}).get("key", ""))
                for name in (status.get("id"), status.get("name")):
                    if name:
                        self._categories[str(name).casefold()] = category
        return ""

    # search ---------------------------------------------------------------------------------------------------------

    def search_issues(
        self,
        jql: str,
        *,
        fields: Sequence[str] = ("status", "summary"),
        reconcile_ids: Sequence[str | int] = (),
        page_size: int = SEARCH_PAGE_SIZE,
    ) -> Iterator[IssueRef]:
        """Every issue matching ``jql``, page by page (``nextPageToken``), lazily.

        ``reconcile_ids`` (numeric issue ids, at most 50) makes the search consistent for those issues, which the
        index may not show yet right after they were created or edited.
        """
        body: dict[str, Any] = {"jql": jql, "fields": list(dict.fromkeys([*fields, self._field])),
                                "maxResults": page_size}
        reconcile = _reconcile_list(reconcile_ids)
        if reconcile:
            body["reconcileIssues"] = reconcile
        while True:
            page = self._ok(self._call("POST", "/search/jql", json=body, read_only=True), "POST", "/search/jql")
            for issue in page.get("issues") or []:
                yield self._issue_ref(issue)
            token = page.get("nextPageToken")
            if not token or page.get("isLast"):
                return
            body = {**body, "nextPageToken": token}

    # webhooks -------------------------------------------------------------------------------------------------------

    def register_webhook(
        self,
        url: str,
        jql_filter: str,
        events: Sequence[str] = WEBHOOK_EVENTS,
        field_ids: Sequence[str] = WEBHOOK_FIELDS,
    ) -> list[int]:
        """Register a dynamic webhook; returns the new ids. ``jql_filter`` must stay within Jira's webhook subset
        (``project``, ``issuetype``, ``status``, ``assignee``, ``reporter``, ``issueKey`` with ``=``, ``!=``,
        ``IN``, ``NOT IN``)."""
        details: dict[str, Any] = {"events": list(events), "jqlFilter": jql_filter}
        if field_ids:
            details["fieldIdsFilter"] = list(field_ids)
        result = self._ok(self._call("POST", "/webhook", json={"url": url, "webhooks": [details]}), "POST", "/webhook")
        entries = result.get("webhookRegistrationResult") or []
        errors = [str(message) for entry in entries for message in entry.get("errors") or []]
        ids = [int(entry["createdWebhookId"]) for entry in entries if entry.get("createdWebhookId") is not None]
        if errors or not ids:
            raise ValidationError(f"Jira refused the webhook registration: {'; '.join(errors) or 'no webhook created'}")
        logger.info("registered Jira webhooks %s", ids)
        return ids

    def refresh_webhooks(self, ids: Sequence[int]) -> datetime:
        """Extend the life of dynamic webhooks (they expire 30 days after registration or the last refresh)."""
        body = {"webhookIds": [int(i) for i in ids]}
        result = self._ok(self._call("PUT", "/webhook/refresh", json=body), "PUT", "/webhook/refresh")
        return parse_expiration(result.get("expirationDate"))

    def list_webhooks(self) -> list[dict[str, Any]]:
        """The app's dynamic webhooks on this site (all pages)."""
        webhooks: list[dict[str, Any]] = []
        start = 0
        while True:
            response = self._call("GET", "/webhook", params={"startAt": start, "maxResults": 100})
            page = self._ok(response, "GET", "/webhook")
            values = page.get("values") or []
            webhooks.extend(values)
            start += len(values)
            if page.get("isLast", True) or not values:
                return webhooks

    def delete_webhooks(self, ids: Sequence[int]) -> None:
        if ids:
            body = {"webhookIds": [int(i) for i in ids]}
            self._ok(self._call("DELETE", "/webhook", json=body), "DELETE", "/webhook", expected=(202, 200, 204))

    def ensure_webhook(
        self,
        url: str,
        jql_filter: str,
        known_ids: Sequence[int] = (),
        *,
        events: Sequence[str] = WEBHOOK_EVENTS,
        field_ids: Sequence[str] = WEBHOOK_FIELDS,
        now: datetime | None = None,
    ) -> tuple[list[int], datetime]:
        """Keep one live webhook for ``url``: refresh the live ones, drop expired ones, register when none is left.

        Webhooks registered earlier for the same URL and filter are adopted even if their ids were lost, so a
        maintenance run never piles up duplicates (an OAuth app may hold only five per user and site).
        Returns the ids to store and their new expiry.
        """
        moment = now or datetime.now(timezone.utc)
        known = {int(i) for i in known_ids}
        live, expired = [], []
        for webhook in self.list_webhooks():
            ours = int(webhook["id"]) in known or (webhook.get("url") == url and webhook.get("jqlFilter") == jql_filter)
            if not ours:
                continue
            expiry = webhook.get("expirationDate")
            (expired if expiry is not None and parse_expiration(expiry) <= moment else live).append(int(webhook["id"]))
        if expired:
            logger.info("deleting expired Jira webhooks %s", expired)
            self.delete_webhooks(expired)
        ids = live or self.register_webhook(url, jql_filter, events, field_ids)
        return ids, self.refresh_webhooks(ids)

    # health ---------------------------------------------------------------------------------------------------------

    def myself(self) -> dict[str, Any]:
        """The user the connector acts as (``ping``)."""
        return self._ok(self._call("GET", "/myself"), "GET", "/myself")

    def project(self) -> dict[str, Any]:
        """The configured project with its issue types (``ping``); ``NotFoundError`` if it is not visible."""
        path = f"/project/{self._project_key}"
        return self._ok(self._call("GET", path), "GET", path)

    def account_states(self, account_ids: Sequence[str]) -> dict[str, bool]:
        """Which of ``account_ids`` Jira knows, each with whether it is active (``GET /user/bulk``, in batches that
        keep the URL short; an unknown id is simply absent from Jira's answer). ``connector config import`` refuses
        tables that route to accounts missing here."""
        found: dict[str, bool] = {}
        wanted = list(dict.fromkeys(account_ids))
        for first in range(0, len(wanted), USER_BULK_BATCH):
            batch = wanted[first:first + USER_BULK_BATCH]
            start = 0
            while True:
                params = [("accountId", account) for account in batch] + [("startAt", start),
                                                                          ("maxResults", len(batch))]
                page = self._ok(self._call("GET", "/user/bulk", params=params), "GET", "/user/bulk")
                users = page.get("values") or []
                for user in users:
                    if isinstance(user, Mapping) and user.get("accountId"):
                        found[str(user["accountId"])] = user.get("active", True) is not False
                if page.get("isLast", True) or not users:
                    break
                start += len(users)
        return found

    def field_exists(self, field_id: str) -> bool:
        fields = self._ok(self._call("GET", "/field"), "GET", "/field")
        return any(isinstance(f, Mapping) and f.get("id") == field_id for f in fields)

    # plumbing -------------------------------------------------------------------------------------------------------

    def _transition(self, key: str, leads_there: Callable[[Mapping[str, Any]], bool]) -> bool:
        path = _issue_path(key, "transitions")
        available = self._ok(self._call("GET", path), "GET", path).get("transitions") or []
        chosen = next((t for t in available if t.get("isAvailable", True) and leads_there(t.get("to") or {})), None)
        if chosen is None:
            return False
        self._ok(self._call("POST", path, json={"transition": {"id": str(chosen["id"])}}), "POST", path,
                 expected=(204,))
        logger.info("moved Jira issue %s to %s", key, (chosen.get("to") or {}).get("name"))
        return True

    def _fields_of(self, draft: IssueDraft) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if draft.summary is not None:
            summary = " ".join(draft.summary.split())
            fields["summary"] = summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…"
        if draft.description is not None:
            fields["description"] = draft.description
        if draft.external_id is not None:
            fields[self._field] = draft.external_id
        if draft.labels is not None:
            fields["labels"] = ["-".join(label.split()) for label in draft.labels if label.strip()]
        if draft.assignee_account_id is not None:
            fields["assignee"] = {"accountId": draft.assignee_account_id}
        if draft.due_date is not None:
            fields["duedate"] = draft.due_date
        if draft.priority is not None:
            fields["priority"] = {"name": draft.priority}
        return fields

    def _issue_ref(self, issue: Mapping[str, Any]) -> IssueRef:
        fields = issue.get("fields") or {}
        status = fields.get("status") or {}
        external_id = fields.get(self._field)
        resolution = fields.get("resolution")
        return IssueRef(
            id=str(issue.get("id", "")),
            key=str(issue.get("key", "")),
            resolution=(str(resolution.get("name") or "") or None) if isinstance(resolution, Mapping) else None,
            status=str(status.get("name", "")),
            status_category=str((status.get("statusCategory") or {}).get("key", "")),
            external_id=external_id if isinstance(external_id, str) else None,
            fields=fields,
            creator_account_id=(fields.get("creator") or {}).get("accountId") if isinstance(
                fields.get("creator"), Mapping) else None,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        read_only: bool = False,
    ) -> requests.Response:
        """One API call with a fresh token; a 401 invalidates that token and tries once more with a new one."""
        token = self._tokens.access_token()
        response = self._send(method, path, token, json=json, params=params, read_only=read_only)
        if response.status_code == 401 and not _scope_mismatch(response):
            logger.info("Jira refused the access token on %s %s; refreshing once", method, path)
            self._tokens.invalidate(token)
            response = self._send(method, path, self._tokens.access_token(), json=json, params=params,
                                  read_only=read_only)
        return response

    def _send(self, method: str, path: str, token: str, *, json: Any, params: Mapping[str, Any] | None,
              read_only: bool) -> requests.Response:
        try:
            response = self._session.request(
                method, self._base + path, json=json, params=params, timeout=self._timeout,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error("Jira", method, path, exc,
                                  may_have_happened=method == "POST" and not read_only) from exc
        refused = redirect_refused("Jira", "JiraApiUrl", response)
        if refused is not None:  # the bearer token stays with Jira
            raise refused
        _note_rate_limits(response, method, path)
        return response

    def _created(self, response: requests.Response, path: str, consequence: str) -> Any:
        """The body of a ``201`` to a POST that creates something; an answer that may hide a creation is uncertain.

        A 5xx (a gateway timing out on a create it forwarded) or an unreadable 201 may stand for something created:
        ``UncertainOutcome``. A 429 or 409 is a refusal that created nothing and may be retried at once."""
        try:
            return self._ok(response, "POST", path, expected=(201,))
        except TransientError as exc:
            if response.status_code in (409, 429):
                raise
            raise UncertainOutcome(f"{exc}; {consequence}", exc.retry_after) from None

    def _ok(self, response: requests.Response, method: str, path: str, expected: tuple[int, ...] = (200,)) -> Any:
        if response.status_code not in expected:
            raise _status_error(response, method, path)
        if response.status_code == 204 or not response.content:
            return {}
        return _json(response, f"Jira {method} {path}")


# --- helpers ----------------------------------------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    """A Jira timestamp (``2026-11-02T10:00:00.000+0000``) as an instant; unreadable ones sort first."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _issue_path(key_or_id: str, *rest: str) -> str:
    """``/issue/{issueIdOrKey}[/...]`` for an issue id or key only (``connector.ids``): anything else is refused
    before a request is made, since it came from outside and would carry the bearer token to another path."""
    try:
        segment = issue_segment(key_or_id)
    except ValueError as exc:
        raise PermanentError(str(exc)) from None
    return "/".join(("/issue", segment, *rest))


def parse_expiration(value: Any) -> datetime:
    """Webhook ``expirationDate``: epoch milliseconds per the schema, an ISO string per the examples; both occur."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise PermanentError(f"Jira sent an unreadable webhook expirationDate {text!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise PermanentError(f"Jira sent no usable webhook expirationDate ({value!r})")


def _resolution_set(items: Sequence[Any]) -> str | None:
    """The resolution a changelog entry set (its ``resolution`` item's ``toString``), if it set one."""
    for item in items:
        if isinstance(item, Mapping) and (item.get("fieldId") or item.get("field")) == "resolution":
            return str(item.get("toString") or "") or None
    return None


def _scope_mismatch(response: requests.Response) -> bool:
    """Jira's 401 for a grant without the operation's scope (``{"code": 401, "message": "Unauthorized; scope does
    not match"}``): a fresh token has the same scopes, so it is not refreshed for."""
    return SCOPE_MISMATCH in _error_detail(response)[0].casefold()


def _reconcile_list(ids: Sequence[str | int]) -> list[int]:
    numeric = [int(i) for i in ids if str(i).strip().isdigit()]
    if len(numeric) != len(ids):
        logger.warning("reconcileIssues takes numeric issue ids only; ignored %d other values", len(ids) - len(numeric))
    unique = list(dict.fromkeys(numeric))
    if len(unique) > MAX_RECONCILE_IDS:
        logger.warning("reconcileIssues takes at most %d ids; keeping the last %d of %d",
                       MAX_RECONCILE_IDS, MAX_RECONCILE_IDS, len(unique))
        unique = unique[-MAX_RECONCILE_IDS:]
    return unique


def _normalise_site(url: str) -> str:
    return url.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")


def _post_token_endpoint(session: requests.Session, url: str, body: Mapping[str, Any],
                         timeout: tuple[float, float]) -> requests.Response:
    """POST a grant; transport failures are transient: a rotated refresh token stays usable for a 10-minute leeway."""
    try:
        response = session.post(url, json=dict(body), headers={"Accept": "application/json"}, timeout=timeout,
                                allow_redirects=False)
    except requests.RequestException as exc:
        raise TransientError(f"could not reach the Jira token endpoint: {type(exc).__name__}") from None
    refused = redirect_refused("Jira's token endpoint", "JiraAuthUrl", response)
    if refused is not None:  # the body holds the client secret and a refresh token or code: never re-posted
        raise refused
    return response


def _issued_tokens(response: requests.Response, *, previous_refresh_token: str) -> dict[str, Any]:
    payload = _json(response, "the Jira token endpoint")
    if not isinstance(payload, Mapping) or not payload.get("access_token"):
        raise TransientError("the Jira token endpoint answered without an access token")
    try:
        lifetime = float(payload.get("expires_in") or 3600)
    except (TypeError, ValueError):
        lifetime = 3600.0
    return {
        "access_token": str(payload["access_token"]),
        "refresh_token": str(payload.get("refresh_token") or previous_refresh_token),
        "expires_at": time.time() + lifetime,
    }


def _oauth_error(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return ""
    return str(payload.get("error") or "") if isinstance(payload, Mapping) else ""


def _token_endpoint_error(response: requests.Response, error: str, doing: str) -> ConnectorError:
    status = response.status_code
    if status == 429 or status >= 500:
        return TransientError(f"Jira token endpoint unavailable while {doing} ({status})", _retry_after(response))
    if status == 401 or error in ("invalid_client", "unauthorized_client", "access_denied"):
        return ConfigurationError(f"Jira refused the app's client credentials while {doing} ({status} {error}); "
                                  "check client_id and client_secret in the Jira secret")
    return PermanentError(f"Jira token endpoint answered {status} {error or ''} while {doing}".rstrip())


def _count_reconnect_needed(namespace: str) -> None:
    """Emit one CloudWatch metric (EMF on stdout), so an alarm can ask a person to reconnect."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric  # rare path: keeps cold starts lean

    with single_metric(name=RECONNECT_METRIC, unit=MetricUnit.Count, value=1, namespace=namespace):
        pass


def _json(response: requests.Response, source: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise TransientError(f"{source} answered {response.status_code} with a body that is not JSON") from None


def _error_detail(response: requests.Response) -> tuple[str, dict[str, str]]:
    """Jira's ``ErrorCollection``: ``errorMessages`` and per-field ``errors``, as one readable line."""
    try:
        payload = response.json()
    except ValueError:
        return (response.reason or "").strip(), {}
    if not isinstance(payload, Mapping):
        return "", {}
    messages = [str(m) for m in payload.get("errorMessages") or []]
    errors = {str(k): str(v) for k, v in (payload.get("errors") or {}).items()}
    if not messages and not errors and payload.get("message"):
        messages = [str(payload["message"])]
    parts = messages + [f"{field}: {message}" for field, message in errors.items()]
    return "; ".join(parts), errors


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait: ``Retry-After`` (a minimum, at least 1 s), else the time left to ``X-RateLimit-Reset``."""
    seconds = retry_after_seconds(response, minimum=1.0)  # Jira sometimes sends 0, which would spin
    if seconds is not None:
        return seconds
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            moment = datetime.fromisoformat(reset.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return max((moment - datetime.now(timezone.utc)).total_seconds(), 1.0)
    return None


def _note_rate_limits(response: requests.Response, method: str, path: str) -> None:
    if response.status_code == 429:
        logger.warning("Jira rate limit on %s %s (reason %s, retry after %s s)", method, path,
                       response.headers.get("RateLimit-Reason", "unknown"), response.headers.get("Retry-After", "?"))
    elif response.headers.get("X-RateLimit-NearLimit", "").lower() == "true":
        logger.warning("Jira rate limit nearly reached on %s %s (%s of %s left)", method, path,
                       response.headers.get("X-RateLimit-Remaining", "?"),
                       response.headers.get("X-RateLimit-Limit", "?"))


def _status_error(response: requests.Response, method: str, path: str) -> ConnectorError:
    status = response.status_code
    detail, field_errors = _error_detail(response)
    where = f"Jira {method} {path} answered {status}"
    if detail:
        where = f"{where}: {detail}"
    if status == 400:
        return ValidationError(where, field_errors)
    if status == 401 and SCOPE_MISMATCH in detail.casefold():
        hint = USER_SCOPE_HINT if path.startswith(("/user", "/group")) else f"the grant lacks a scope; {RECONNECT_HINT}"
        return ConfigurationError(f"{where} ({hint})")
    if status == 401:
        return AuthenticationError(f"{where} (the token was refused even after a refresh; {RECONNECT_HINT})")
    if status == 403:
        return AuthenticationError(f"{where} (the connecting user or the app's scopes lack a permission)")
    if status == 404:
        return NotFoundError(where)
    if status == 409:
        return TransientError(f"{where} (conflicting update)")
    if status == 410:
        return ConfigurationError(f"{where} (this API was removed; the connector needs an update)")
    if status == 422:
        return ConfigurationError(f"{where} (a Jira configuration problem: project, screen or workflow)")
    if status == 429:
        return TransientError(f"{where} (rate limited, reason {response.headers.get('RateLimit-Reason', 'unknown')})",
                              _retry_after(response))
    if status >= 500:
        return TransientError(where, _retry_after(response))
    return PermanentError(where)
