"""A stateful stand-in for Jira Cloud (OAuth 2.0 3LO + REST API v3 + webhooks), served on 127.0.0.1.

Used by ``make demo``, ``connector local`` and the end-to-end tests. It is deliberately as strict as the real service
(per Atlassian's documentation and the vendored OpenAPI description), because a lenient stand-in hides exactly the
bugs that break a connector in production:
- refresh tokens rotate; an old one works for a leeway, and a reuse after it kills the whole grant;
- ``accessible-resources`` lists several sites, the connector's site not first;
- ``/rest/api/3/search`` answers 410; ``/search/jql`` pages with ``nextPageToken``, refuses unbounded JQL, refuses
  ``=`` on text fields, treats ``~`` as a token match, and hides new or edited issues for ``search_lag_seconds``
  unless their ids are in ``reconcileIssues``;
- descriptions and comments must be valid ADF (the official JSON schema), a single-line text field takes a string;
- transitions are global, with status categories; resolving an issue delivers ``jira:issue_updated`` to admin
  webhooks (``X-Hub-Signature``) and dynamic webhooks (HS256 JWT), with retries and a stable
  ``X-Atlassian-Webhook-Identifier``; dynamic webhooks expire after 30 days of the sandbox clock;
- every change has a changelog entry with its author (``GET /issue/{key}/changelog``, oldest first, paged), a
  ``UserDetails`` whose ``accountType`` and ``active`` tell a person from an app (Automation for Jira is one, on every
  site), a service-desk customer or a deactivated account; the connector's own transitions are delivered to webhooks
  like a person's, with the connector as ``user``; issues have a ``creator``, and people clone issues (custom fields
  copied) and edit the external-id field by hand;
- a move into a done status sets a resolution the way the project's style does (``project_style``): a company-managed
  project lets the person pick it (Won't Do on Done), a team-managed one always sets Done (a "no" is the status);
- people belong to groups (``GET /user/groups``, ``GET /group/bulk``), readable only with the ``read:jira-user``
  scope: a grant without it gets Jira's 401 "scope does not match";
- faults on demand: failing or slow responses and a request-rate limit with ``Retry-After``.

The base URL serves both the auth endpoints and the API, so locally ``JIRA_AUTH_URL = JIRA_API_URL = sandbox.url``.
All state sits behind one lock; webhook deliveries are sent outside it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from werkzeug.wrappers import Request, Response

from ..serving import LoopbackServer, Served
from .common import (
    AUTOMATION_ACCOUNT, CATEGORIES, CONNECTOR_ACCOUNT, DEFAULT_PRIORITY, DEFAULT_SCOPES, Delivery, Fault, HttpError,
    ISSUE_TYPES, Issue, JOURNAL_LIMIT, LINK_TYPES, PERSON_ACCOUNT, PRIORITIES, PROJECT_STYLES, RESOLUTIONS,
    SEARCH_GONE, STATUSES, USER_SCOPE, _adf_has_text, _display, _is_date, _jira_time, _jql_time, _json_body,
    _json_response, _read_page_token
)
from .jql import JqlError, _JqlParser, _text_matches, _text_terms
from .adf import adf_problem
from .oauth import OAuthMixin
from .webhooks import WebhooksMixin


class JiraSandbox(OAuthMixin, WebhooksMixin, Served):
    """Jira Cloud on 127.0.0.1. Seed, inject faults and inspect through the methods; talk HTTP to ``url``."""

    def __init__(
        self,
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret-0123456789abcdef0123456789abcdef",
        sites: Iterable[str] = ("https://acme.atlassian.net", "https://acme-sandbox.atlassian.net"),
        project_key: str = "AP",
        external_id_field: str = "customfield_10050",
        search_lag_seconds: float = 0.0,
        refresh_leeway_seconds: float = 600,
        webhook_secret: str = "sandbox-webhook-secret-0123456789abcdef",
        *,
        access_token_lifetime: float = 3600,
        duplicate_deliveries: int = 0,
        delivery_attempts: int = 5,
        delivery_retry_delay: float = 0.0,
        max_dynamic_webhooks: int = 5,
        max_comments_per_issue: int = 5000,
        users: Mapping[str, str] | None = None,
        priorities: Iterable[str] = PRIORITIES,
        project_style: str = "company-managed",
        granted_scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> None:
        if project_style not in PROJECT_STYLES:
            raise ValueError(f"project_style must be one of {PROJECT_STYLES}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.sites = [site.rstrip("/") for site in sites]
        if len(self.sites) < 2:
            raise ValueError("give at least two sites: the connector must pick its own from accessible-resources")
        self.cloud_ids = {site: str(uuid.uuid5(uuid.NAMESPACE_URL, site)) for site in self.sites}
        self.cloud_id = self.cloud_ids[self.sites[0]]
        self.project_key = project_key
        self.project_id = "10000"
        self.external_id_field = external_id_field
        self.external_id_field_number = external_id_field.removeprefix("customfield_")
        self.external_id_field_name = "Acumatica ID"
        self.search_lag_seconds = search_lag_seconds
        self.refresh_leeway_seconds = refresh_leeway_seconds
        self.webhook_secret = webhook_secret
        self.access_token_lifetime = access_token_lifetime
        self.duplicate_deliveries = duplicate_deliveries
        self.delivery_attempts = delivery_attempts
        self.delivery_retry_delay = delivery_retry_delay
        self.max_dynamic_webhooks = max_dynamic_webhooks
        self.max_comments_per_issue = max_comments_per_issue
        self.priorities = {name: str(index) for index, name in enumerate(priorities, start=1)}
        self.project_style = project_style
        self.granted_scopes = tuple(granted_scopes)
        """What a consent grants from now on (``set_grant_scopes`` changes the live grants too)."""

        self._lock = threading.RLock()
        self._clock_offset = 0.0
        self._users = {CONNECTOR_ACCOUNT: "Acumatica connector", PERSON_ACCOUNT: "Pat Approver",
                       AUTOMATION_ACCOUNT: "Automation for Jira", **dict(users or {})}
        self._accounts: dict[str, tuple[str, bool]] = {CONNECTOR_ACCOUNT: ("app", True),
                                                       AUTOMATION_ACCOUNT: ("app", True)}
        """accountId -> (accountType, active) where it is not an active person (``atlassian``)."""
        self._groups: dict[str, dict[str, Any]] = {}
        self.add_to_group(PERSON_ACCOUNT, "jira-software-users")  # every site's product-access group
        self._grants: dict[str, dict[str, Any]] = {}
        self._refresh_tokens: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._refreshes = 0
        self._issues: dict[int, Issue] = {}
        self._links: list[tuple[str, str, str]] = []
        self._issue_ids = itertools.count(10001)
        self._issue_numbers = itertools.count(1)
        self._comment_ids = itertools.count(10100)
        self._changelog_ids = itertools.count(20000)
        self._webhook_ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._admin_webhooks: list[dict[str, Any]] = []
        self._deliveries: deque[dict[str, Any]] = deque(maxlen=JOURNAL_LIMIT)
        self._outbox: list[Delivery] = []
        """Deliveries planned while serving a request, sent after its lock is released (as Jira sends them later)."""
        self._faults: list[Fault] = []
        self._hidden_fields: set[str] = set()
        """Fields the project's create and edit screens lack (``hide_fields``): setting one answers 400."""
        self._rate_limit: tuple[int, float] | None = None
        self._request_times: list[float] = []
        self._exchanges: deque[dict[str, Any]] = deque(maxlen=JOURNAL_LIMIT)
        self._server = LoopbackServer(self._wsgi, name="jira-sandbox")

    @property
    def site_url(self) -> str:
        """The connector's site (the first of ``sites``)."""
        return self.sites[0]

    @property
    def api_base(self) -> str:
        return f"{self.url}/ex/jira/{self.cloud_id}/rest/api/3"

    # clock, OAuth seeding and inspection ------------------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock: real time plus everything ``advance_clock`` added."""
        with self._lock:
            return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward: tokens and webhooks expire, the search index catches up."""
        with self._lock:
            self._clock_offset += seconds

    def issue_refresh_token(self, scopes: Iterable[str] | None = None) -> str:
        """A person's consent: a fresh grant covering every site (and ``scopes``, by default ``granted_scopes``),
        returned as its first refresh token."""
        with self._lock:
            return self._new_refresh_token(self._new_grant(None if scopes is None else tuple(scopes)))

    def issue_authorization_code(self, redirect_uri: str, scopes: Iterable[str] | None = None) -> str:
        """The ``code`` a consent redirect would carry (single-use, valid 10 minutes)."""
        with self._lock:
            code = "sbx-code-" + secrets.token_urlsafe(12)
            self._codes[code] = {"redirect_uri": redirect_uri, "expires_at": self.now() + 600,
                                 "scopes": None if scopes is None else tuple(scopes)}
            return code

    def set_grant_scopes(self, scopes: Iterable[str]) -> None:
        """Every grant, live and future, covers exactly ``scopes``: as if the app's scopes were changed and consent
        given again (a grant without ``read:jira-user`` is refused group membership)."""
        with self._lock:
            self.granted_scopes = tuple(scopes)
            for grant in self._grants.values():
                grant["scopes"] = self.granted_scopes

    @property
    def refresh_count(self) -> int:
        """How many refresh-token grants the token endpoint honoured."""
        with self._lock:
            return self._refreshes

    def grant_alive(self, refresh_token: str) -> bool:
        """Whether the grant that ``refresh_token`` belongs to is still usable (a replay kills it)."""
        with self._lock:
            record = self._refresh_tokens.get(refresh_token)
            return bool(record and self._grants[record["grant"]]["alive"])

    def add_user(self, account_id: str, display_name: str, *, account_type: str = "atlassian", active: bool = True,
                 groups: Iterable[str] = ()) -> None:
        """An account on the site: a person (``atlassian``) by default, or an ``app`` or a service-desk
        ``customer``; ``active=False`` is a deactivated account (its history stays, its moves decide nothing)."""
        if account_type not in ("atlassian", "app", "customer"):
            raise ValueError("accountType is one of atlassian, app, customer")
        with self._lock:
            self._users[account_id] = display_name
            if (account_type, active) == ("atlassian", True):
                self._accounts.pop(account_id, None)
            else:
                self._accounts[account_id] = (account_type, active)
            self.add_to_group(account_id, *groups)

    def add_group(self, name: str) -> str:
        """A group on the site (what a site admin creates); returns its groupId."""
        with self._lock:
            found = self._group_named(name)
            if found is None:
                found = {"name": name, "groupId": str(uuid.uuid5(uuid.NAMESPACE_OID, f"group:{name}")), "members": set()}
                self._groups[name] = found
            return str(found["groupId"])

    def add_to_group(self, account_id: str, *names: str) -> None:
        """Put the account in each group, creating the groups that do not exist yet."""
        with self._lock:
            for name in names:
                self.add_group(name)
                self._group_named(name)["members"].add(account_id)

    def remove_from_group(self, account_id: str, name: str) -> None:
        with self._lock:
            group = self._group_named(name)
            if group is not None:
                group["members"].discard(account_id)

    def _group_named(self, name: str) -> dict[str, Any] | None:
        """Jira group names are case-insensitive."""
        return next((group for key, group in self._groups.items() if key.casefold() == name.casefold()), None)

    # faults -----------------------------------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 429, retry_after: float | None = None, *,
                  method: str | None = None, path_contains: str | None = None) -> None:
        """The next ``n`` matching requests answer ``status`` without being processed."""
        with self._lock:
            self._faults.append(Fault(n, status=status, retry_after=retry_after, method=method,
                                      path_contains=path_contains))

    def hide_fields(self, *names: str, hidden: bool = True) -> None:
        """Take fields off (or put them back on) the project's screens, as an admin can: Jira then refuses a value for
        one with 400 and the field's error, the way it refuses a ``duedate`` or ``priority`` a screen lacks."""
        with self._lock:
            (self._hidden_fields.update if hidden else self._hidden_fields.difference_update)(names)

    def slow_next(self, n: int, seconds: float, *, method: str | None = None, path_contains: str | None = None) -> None:
        """The next ``n`` matching requests are processed, then answered only after ``seconds`` (client timeouts)."""
        with self._lock:
            self._faults.append(Fault(n, delay=seconds, method=method, path_contains=path_contains))

    def set_rate_limit(self, max_requests: int | None, per_seconds: float = 1.0) -> None:
        """Answer 429 (``RateLimit-Reason: jira-burst-based``) beyond ``max_requests`` per window; ``None`` lifts it."""
        with self._lock:
            self._rate_limit = (max_requests, per_seconds) if max_requests else None
            self._request_times.clear()

    # issues -----------------------------------------------------------------------------------------------------------

    def seed_issue(self, summary: str, *, external_id: str | None = None, status: str = "To Do",
                   labels: Iterable[str] = (), age_seconds: float = 86400, creator: str = CONNECTOR_ACCOUNT) -> str:
        """An issue that existed before the test (already indexed for search); returns its key.

        ``creator`` defaults to the connector's account; give ``PERSON_ACCOUNT`` for an issue a person made."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; the sandbox has {sorted(STATUSES)}")
        with self._lock:
            created = self.now() - age_seconds
            issue = self._new_issue({"summary": summary, "description": None, "labels": list(labels),
                                     "assignee": None, self.external_id_field: external_id,
                                     "creator": creator, "reporter": creator}, created=created)
            issue.fields["status"] = status
            issue.fields["resolution"], issue.fields["resolutiondate"] = self._resolution_for(status, None, None)
            issue.indexed_at, issue.index_snapshot = created, None
            return issue.key

    def issue(self, key: str) -> dict[str, Any]:
        """The issue as ``GET /issue/{key}`` shows it (all fields)."""
        with self._lock:
            return self._issue_json(self._find_issue(key), None)

    def issues(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._issue_json(issue, None) for issue in sorted(self._issues.values(), key=lambda i: i.id)]

    def issues_with_external_id(self, external_id: str) -> list[dict[str, Any]]:
        """Every issue whose external-id field equals ``external_id`` exactly (the duplicate check of tests)."""
        with self._lock:
            return [self._issue_json(issue, None) for issue in sorted(self._issues.values(), key=lambda i: i.id)
                    if issue.fields.get(self.external_id_field) == external_id]

    def comments(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._find_issue(key).comments)

    def changelog(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._find_issue(key).changelog)

    def resolve_issue(self, key: str, status: str = "Done", *, actor: str = PERSON_ACCOUNT,
                      resolution: str | None = None, comment: str | None = None) -> list[dict[str, Any]]:
        """``actor`` (a person by default) moves the issue to ``status``, picking ``resolution`` on the transition
        screen (company-managed projects only); the ``jira:issue_updated`` webhooks are delivered before returning
        (``move_issue`` is the move whose deliveries are lost or late). ``comment``: what the person typed into the
        transition screen's comment box (a comment of theirs, written with the move).

        Returns the delivery attempts made (see ``deliveries``).
        """
        if comment is not None:
            self._person_comment(key, comment, actor)
        return self._send_all(self._person_move(key, status, actor, resolution))

    def _person_comment(self, key: str, text: str, actor: str) -> None:
        with self._lock:
            issue = self._find_issue(key)
            stamp, author = _jira_time(self.now()), self._user_json(actor)
            comment_id = str(next(self._comment_ids))
            issue.comments.append({"self": f"{self._issue_url(issue)}/comment/{comment_id}", "id": comment_id,
                                   "author": author, "updateAuthor": author, "created": stamp, "updated": stamp,
                                   "jsdPublic": True, "body": {"type": "doc", "version": 1, "content": [
                                       {"type": "paragraph", "content": [{"type": "text", "text": text}]}]}})

    def move_issue(self, key: str, status: str, *, actor: str = PERSON_ACCOUNT,
                   resolution: str | None = None) -> list[tuple[bytes, dict[str, str]]]:
        """``actor`` moves the issue to ``status``, as ``resolve_issue`` does, but the webhook deliveries it implies
        are handed back (body and headers, signed as sent) instead of sent: for a caller that delivers them itself,
        out of order, late, more than once or all at once, as Jira's delivery service can."""
        return [(delivery.body, self._delivery_headers(delivery, retry=0))
                for delivery in self._person_move(key, status, actor, resolution)]

    def _person_move(self, key: str, status: str, actor: str, resolution: str | None = None) -> list[Delivery]:
        with self._lock:
            issue = self._find_issue(key)
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}; the sandbox has {sorted(STATUSES)}")
            if resolution is not None and (resolution not in RESOLUTIONS or self.project_style == "team-managed"):
                raise ValueError(f"resolution {resolution!r}: a {self.project_style} project offers "
                                 f"{sorted(RESOLUTIONS) if self.project_style == 'company-managed' else 'none'}")
            change = self._move(issue, status, actor, resolution)
            return self._plan_deliveries(issue, change)

    def clone_issue(self, key: str, *, actor: str = PERSON_ACCOUNT) -> str:
        """What Jira's *Clone* does for a person: a new issue (``CLONE - `` summary, initial status) that keeps the
        description, labels and custom fields, the external-id field included; created by ``actor``."""
        with self._lock:
            source = self._find_issue(key)
            copied = {name: copy.deepcopy(source.fields.get(name))
                      for name in ("description", "labels", "assignee", self.external_id_field)}
            clone = self._new_issue({**copied, "summary": f"CLONE - {source.fields['summary']}"[:255],
                                     "creator": actor, "reporter": actor}, created=self.now())
            return clone.key

    def edit_issue(self, key: str, fields: Mapping[str, Any], *, actor: str = PERSON_ACCOUNT) -> None:
        """A person edits fields in the UI (e.g. types another document's id into the external-id field)."""
        with self._lock:
            issue = self._find_issue(key)
            errors: dict[str, str] = {}
            values = self._validated_fields(fields, errors)
            if errors:
                raise ValueError(errors)
            items = [{"field": name, "fieldtype": "custom" if name.startswith("customfield_") else "jira",
                      "fieldId": name, "from": None, "fromString": _display(issue.fields.get(name)), "to": None,
                      "toString": _display(value)} for name, value in values.items()]
            self._write(issue, values, self._changelog_entry(actor, items))

    def _send_all(self, planned: list[Delivery]) -> list[dict[str, Any]]:
        attempts: list[dict[str, Any]] = []
        for delivery in planned:
            attempts.extend(self._deliver(delivery))
        return attempts

    def build_issue_updated_event(self, key: str, from_status: str, to_status: str, *,
                                  kind: str = "admin") -> tuple[bytes, dict[str, str]]:
        """The body and headers of a real-shaped ``jira:issue_updated`` delivery, for tests that post it themselves.

        ``kind="admin"`` signs with ``X-Hub-Signature`` (``webhook_secret``); ``"dynamic"`` carries a JWT made with
        the client secret. The issue itself is not changed.
        """
        if from_status not in STATUSES or to_status not in STATUSES:
            raise ValueError(f"unknown status; the sandbox has {sorted(STATUSES)}")
        with self._lock:
            issue = copy.deepcopy(self._find_issue(key))
            issue.fields["status"] = to_status
            issue.fields["resolution"], issue.fields["resolutiondate"] = self._resolution_for(
                to_status, None, issue.fields.get("resolutiondate"))
            change = self._changelog_entry(PERSON_ACCOUNT, [self._status_item(from_status, to_status)])
            ids = tuple(sorted(self._webhooks)) if kind == "dynamic" else ()
            body = self._event_body(issue, change, ids)
            delivery = Delivery(str(next(self._delivery_ids)), "", body, kind, self.webhook_secret, ids)
        return body, self._delivery_headers(delivery, retry=0)

    # webhooks ---------------------------------------------------------------------------------------------------------

    def add_admin_webhook(self, url: str, secret: str | None = None, *, jql: str | None = None,
                          events: Iterable[str] = ("jira:issue_updated",)) -> None:
        """What a Jira admin sets up under System > WebHooks: ``secret`` (default ``webhook_secret``) signs bodies."""
        with self._lock:
            parsed = _JqlParser(jql).parse()[0] if jql else None
            self._admin_webhooks.append({"url": url, "secret": self.webhook_secret if secret is None else secret,
                                         "events": list(events), "jql": parsed})

    def webhooks(self) -> list[dict[str, Any]]:
        """The dynamic webhooks as ``GET /webhook`` lists them, expired ones included."""
        with self._lock:
            return [self._webhook_json(hook) for hook in sorted(self._webhooks.values(), key=lambda h: h["id"])]

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt: identifier, url, kind, attempt, retry, status or error, will_retry."""
        with self._lock:
            return copy.deepcopy(list(self._deliveries))

    def exchanges(self) -> list[dict[str, Any]]:
        """Every REST API request and its response (method, path under ``/rest/api/3``, query, bodies, status)."""
        with self._lock:
            return copy.deepcopy(list(self._exchanges))

    # HTTP -------------------------------------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request_body = request.get_data(cache=True)
        delay = 0.0
        try:
            with self._lock:
                fault = self._take_fault(request.method, request.path)
                if fault is not None and fault.status is not None:
                    raise self._fault_error(fault)
                self._check_rate_limit()
                delay = fault.delay if fault is not None else 0.0
                response = self._dispatch(request)
        except HttpError as error:
            response = _json_response(error.status, error.body, error.headers)
        with self._lock:
            self._record(request, request_body, response)
            outbox, self._outbox = self._outbox, []
        if delay:
            time.sleep(delay)
        self._send_all(outbox)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/oauth/token":
            if request.method != "POST":
                raise HttpError(405, body={"error": "invalid_request", "error_description": "POST only"})
            return self._token_endpoint(request)
        if path == "/oauth/token/accessible-resources":
            self._authenticate(request)
            return _json_response(200, self._accessible_resources())
        ui = re.fullmatch(r"/sandbox-ui/issue/([^/]+)/transition", path)
        if ui and request.method == "POST":
            return self._person_moves(request, ui.group(1))
        if path == "/sandbox-ui/issues" and request.method == "GET":  # a person searching the UI by external id
            found = self.issues_with_external_id(request.args.get("externalId", ""))
            return _json_response(200, [{"key": i["key"], "status": i["fields"]["status"]["name"]} for i in found])
        match = re.fullmatch(r"/ex/jira/([^/]+)/rest/api/3(/.*)", path)
        if not match:
            raise HttpError(404, [f"No route for {path}"])
        grant = self._authenticate(request)
        site = next((s for s, cloud in self.cloud_ids.items() if cloud == match.group(1)), None)
        if site is None:
            raise HttpError(404, body={"code": 404, "message": "Site not found"})
        return self._api(request, match.group(2), main_site=site == self.site_url, grant=grant)

    def _person_moves(self, request: Request, key: str) -> Response:
        """Not Jira's API: what a person signed in to the Jira UI does when they move an issue (``connector sandbox
        resolve``), so a local run can be tried by hand from another shell. Webhooks are delivered as for any move."""
        body = _json_body(request)
        status = str(body.get("status") or "Done")
        if status not in STATUSES:
            raise HttpError(400, [f"unknown status {status!r}; the sandbox has {sorted(STATUSES)}"])
        resolution = body.get("resolution")
        if resolution is not None and resolution not in RESOLUTIONS:
            raise HttpError(400, [f"unknown resolution {resolution!r}; the sandbox has {sorted(RESOLUTIONS)}"])
        issue = self._find_issue_or_404(key)
        change = self._move(issue, status, PERSON_ACCOUNT, resolution)
        self._outbox.extend(self._plan_deliveries(issue, change))
        return _json_response(200, {"key": issue.key, "status": status})

    def _api(self, request: Request, path: str, *, main_site: bool, grant: str) -> Response:
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", r"/myself", self._myself),
            ("GET", r"/user/bulk", self._users_bulk),
            ("GET", r"/status", self._statuses),
            ("GET", r"/field", self._fields),
            ("GET", r"/project/(?P<key>[^/]+)", self._project),
            ("POST", r"/issue", self._create_issue),
            ("GET", r"/issue/(?P<key>[^/]+)", self._get_issue),
            ("PUT", r"/issue/(?P<key>[^/]+)", self._edit_issue),
            ("GET", r"/issue/(?P<key>[^/]+)/changelog", self._list_changelog),
            ("GET", r"/issue/(?P<key>[^/]+)/comment", self._list_comments),
            ("POST", r"/issue/(?P<key>[^/]+)/comment", self._add_comment),
            ("GET", r"/issue/(?P<key>[^/]+)/transitions", self._list_transitions),
            ("POST", r"/issue/(?P<key>[^/]+)/transitions", self._do_transition),
            ("GET", r"/search/jql", self._search),
            ("POST", r"/search/jql", self._search),
            ("GET", r"/search", self._search_gone),
            ("POST", r"/search", self._search_gone),
            ("GET", r"/webhook", self._list_webhooks),
            ("POST", r"/webhook", self._register_webhooks),
            ("DELETE", r"/webhook", self._delete_webhooks),
            ("PUT", r"/webhook/refresh", self._refresh_webhooks),
            ("POST", r"/issueLink", self._link_issues),
            ("GET", r"/user/groups", self._user_groups),
            ("GET", r"/user", self._get_user),
            ("GET", r"/group/bulk", self._bulk_groups),
        ]
        path_known = False
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if not match:
                continue
            path_known = True
            if method == request.method:
                if not main_site and handler not in (self._myself, self._fields, self._statuses):
                    raise HttpError(404, ["No project could be found on this site."])
                if handler in (self._user_groups, self._get_user, self._bulk_groups) \
                        and USER_SCOPE not in self._grants[grant]["scopes"]:
                    raise HttpError(401, body={"code": 401, "message": "Unauthorized; scope does not match"})
                return handler(request, **match.groupdict())
        if path_known:
            raise HttpError(405, [f"Method {request.method} is not allowed for {path}"])
        raise HttpError(404, [f"No REST resource at {path}"])

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_error(self, fault: Fault) -> HttpError:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after)) if float(fault.retry_after).is_integer() \
                else str(fault.retry_after)
        if fault.status == 429:
            headers.update({"RateLimit-Reason": "jira-quota-tenant-based", "X-RateLimit-Remaining": "0"})
            return HttpError(429, ["Rate limit exceeded."], headers=headers)
        return HttpError(int(fault.status or 500), [f"Injected failure {fault.status}"], headers=headers)

    def _check_rate_limit(self) -> None:
        if self._rate_limit is None:
            return
        limit, window = self._rate_limit
        moment = time.monotonic()
        self._request_times = [t for t in self._request_times if moment - t < window]
        if len(self._request_times) >= limit:
            wait = max(1, int(window - (moment - self._request_times[0]) + 0.999))
            reset = datetime.now(timezone.utc) + timedelta(seconds=wait)
            raise HttpError(429, ["Rate limit exceeded."], headers={
                "Retry-After": str(wait), "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"), "RateLimit-Reason": "jira-burst-based",
                "X-RateLimit-NearLimit": "true"})
        self._request_times.append(moment)

    def _record(self, request: Request, request_body: bytes, response: Response) -> None:
        match = re.fullmatch(r"/ex/jira/[^/]+(/rest/api/3/.*)", request.path)
        if not match:
            return
        self._exchanges.append({
            "method": request.method,
            "path": match.group(1),
            "query": request.query_string.decode("latin-1"),
            "content_type": request.headers.get("Content-Type", ""),
            "body": request_body,
            "status": response.status_code,
            "response_content_type": response.headers.get("Content-Type", ""),
            "response_body": response.get_data(),
        })

    # REST: users, project, fields -------------------------------------------------------------------------------------

    def _myself(self, request: Request) -> Response:
        return _json_response(200, self._user_json(CONNECTOR_ACCOUNT))

    def _users_bulk(self, request: Request) -> Response:
        """``GET /user/bulk``: the known users among the ``accountId`` parameters, a page at a time (``PageBeanUser``);
        unknown ids are left out, as Jira does."""
        wanted = list(dict.fromkeys(request.args.getlist("accountId")))
        if not wanted:
            raise HttpError(400, ["accountId is required."])
        start, size = int(request.args.get("startAt", 0)), int(request.args.get("maxResults", 10))
        known = [account for account in wanted if account in self._users]
        return _json_response(200, {"self": f"{self._site_api()}/user/bulk", "startAt": start, "maxResults": size,
                                    "total": len(known), "isLast": start + size >= len(known),
                                    "values": [self._user_json(account) for account in known[start:start + size]]})

    def _account_of(self, request: Request) -> str:
        account = request.args.get("accountId")
        if not account:
            raise HttpError(400, ["The accountId query parameter needs to be provided."])
        if account not in self._users:
            raise HttpError(404, [f"The user with account ID '{account}' does not exist."])
        return account

    def _get_user(self, request: Request) -> Response:
        """``GET /user?accountId=``: the account (``User``), 404 for an account the site does not know."""
        return _json_response(200, self._user_json(self._account_of(request)))

    def _user_groups(self, request: Request) -> Response:
        """``GET /user/groups?accountId=``: ``GroupName[]``, the groups the account belongs to."""
        account = self._account_of(request)
        return _json_response(200, [self._group_json(group, with_self=True)
                                    for _, group in sorted(self._groups.items()) if account in group["members"]])

    def _bulk_groups(self, request: Request) -> Response:
        """``GET /group/bulk``: ``PageBeanGroupDetails`` of the groups named (``groupName``, ``groupId``, each
        repeatable), or of every group; paged by ``startAt``/``maxResults``."""
        names = {name.casefold() for name in request.args.getlist("groupName")}
        ids = set(request.args.getlist("groupId"))
        try:
            start = max(0, int(request.args.get("startAt", 0)))
            limit = max(1, min(50, int(request.args.get("maxResults", 50))))
        except ValueError:
            raise HttpError(400, ["startAt and maxResults must be integers."]) from None
        chosen = [group for _, group in sorted(self._groups.items())
                  if (not names and not ids) or group["name"].casefold() in names or group["groupId"] in ids]
        page = chosen[start: start + limit]
        return _json_response(200, {"self": f"{self._site_api()}/group/bulk", "startAt": start, "maxResults": limit,
                                    "total": len(chosen), "isLast": start + limit >= len(chosen),
                                    "values": [self._group_json(group) for group in page]})

    def _group_json(self, group: Mapping[str, Any], with_self: bool = False) -> dict[str, Any]:
        shown = {"name": group["name"], "groupId": group["groupId"]}
        if with_self:
            shown["self"] = f"{self._site_api()}/group?groupId={group['groupId']}"
        return shown

    def _statuses(self, request: Request) -> Response:
        """``GET /status``: every status the user can see, with its category (``StatusDetails[]``)."""
        return _json_response(200, [self._status_json(name) for name in STATUSES])

    def _project(self, request: Request, key: str) -> Response:
        if key not in (self.project_key, self.project_id):
            raise HttpError(404, [f"No project could be found with key '{key}'."])
        return _json_response(200, {**self._project_json(), "issueTypes": [
            {"id": type_id, "name": name, "self": f"{self._site_api()}/issuetype/{type_id}", "subtask": False,
             "hierarchyLevel": 0, "description": name} for name, type_id in ISSUE_TYPES.items()]})

    def _fields(self, request: Request) -> Response:
        system = [("summary", "Summary", "string"), ("description", "Description", "string"),
                  ("status", "Status", "status"), ("labels", "Labels", "array"), ("assignee", "Assignee", "user"),
                  ("reporter", "Reporter", "user"), ("creator", "Creator", "user"),
                  ("project", "Project", "project"), ("resolutiondate", "Resolved", "datetime"),
                  ("issuetype", "Issue Type", "issuetype"), ("resolution", "Resolution", "resolution"),
                  ("created", "Created", "datetime"), ("updated", "Updated", "datetime"),
                  ("priority", "Priority", "priority"), ("duedate", "Due date", "date")]
        fields = [{"id": fid, "key": fid, "name": name, "custom": False, "orderable": True, "navigable": True,
                   "searchable": True, "clauseNames": [fid], "schema": {"type": kind, "system": fid}}
                  for fid, name, kind in system]
        fields.append({
            "id": self.external_id_field, "key": self.external_id_field, "name": self.external_id_field_name,
            "custom": True, "orderable": True, "navigable": True, "searchable": True,
            "clauseNames": [f"cf[{self.external_id_field_number}]", self.external_id_field_name],
            "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
                       "customId": int(self.external_id_field_number)}})
        return _json_response(200, fields)

    # REST: issues -----------------------------------------------------------------------------------------------------

    def _create_issue(self, request: Request) -> Response:
        body = _json_body(request)
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise HttpError(400, ["The request body must contain 'fields'."])
        if "update" in body and body["update"]:
            raise HttpError(400, ["The sandbox supports 'fields' only when creating issues."])
        errors: dict[str, str] = {}
        project = fields.get("project")
        if not isinstance(project, dict) or not (project.get("key") == self.project_key
                                                 or str(project.get("id")) == self.project_id):
            errors["project"] = "Specify a valid project ID or key"
        issue_type = fields.get("issuetype")
        type_name = None
        if isinstance(issue_type, dict):
            type_name = next((name for name, type_id in ISSUE_TYPES.items()
                              if issue_type.get("name") == name or str(issue_type.get("id")) == type_id), None)
        if type_name is None:
            errors["issuetype"] = "Specify an issue type"
        messages: list[str] = []
        values = self._validated_fields({k: v for k, v in fields.items() if k not in ("project", "issuetype")},
                                        errors, messages)
        if not values.get("summary"):
            errors.setdefault("summary", "You must specify a summary of the issue.")
        if errors:
            raise HttpError(400, messages, errors)
        values.setdefault("priority", DEFAULT_PRIORITY if DEFAULT_PRIORITY in self.priorities else
                          next(iter(self.priorities), None))
        issue = self._new_issue({"description": None, "labels": [], "assignee": None, "duedate": None,
                                 self.external_id_field: None, **values, "issuetype": type_name},
                                created=self.now())
        return _json_response(201, {"id": str(issue.id), "key": issue.key, "self": self._issue_url(issue)})

    def _get_issue(self, request: Request, key: str) -> Response:
        issue = self._find_issue_or_404(key)
        wanted = request.args.get("fields")
        body = self._issue_json(issue, wanted.split(",") if wanted is not None else None)
        if "changelog" in request.args.get("expand", "").split(","):
            # expand=changelog gives the newest 100 entries only (PageOfChangelogs); the endpoint pages the rest.
            histories = self._changelog_page(issue, max(0, len(issue.changelog) - 100), 100)
            body["changelog"] = {"startAt": 0, "maxResults": len(histories), "total": len(issue.changelog),
                                 "histories": histories}
        return _json_response(200, body)

    def _edit_issue(self, request: Request, key: str) -> Response:
        issue = self._find_issue_or_404(key)
        body = _json_body(request)
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise HttpError(400, ["'fields' and 'update' must be objects."])
        both = set(fields) & set(update)
        if both:
            raise HttpError(400, errors={name: "Field can be set in either 'fields' or 'update', not both."
                                         for name in both})
        errors: dict[str, str] = {}
        messages: list[str] = []
        values = self._validated_fields(fields, errors, messages)
        for name, operations in update.items():
            values.update(self._apply_update_operations(issue, name, operations, errors))
        if errors:
            raise HttpError(400, messages, errors)
        items = []
        for name, value in values.items():
            old = issue.fields.get(name)
            if old != value:
                items.append({"field": name, "fieldtype": "custom" if name.startswith("customfield_") else "jira",
                              "fieldId": name, "from": None, "fromString": _display(old), "to": None,
                              "toString": _display(value)})
        if items:
            self._write(issue, values, self._changelog_entry(CONNECTOR_ACCOUNT, items))
        if request.args.get("returnIssue", "false").lower() == "true":
            return _json_response(200, self._issue_json(issue, None))
        return Response(status=204)

    def _apply_update_operations(self, issue: Issue, name: str, operations: Any,
                                 errors: dict[str, str]) -> dict[str, Any]:
        if not isinstance(operations, list):
            errors[name] = "Update operations must be a list."
            return {}
        if name == "labels":
            labels = list(issue.fields.get("labels") or [])
            for operation in operations:
                for verb, value in (operation or {}).items():
                    if verb == "add" and isinstance(value, str) and value not in labels:
                        labels.append(value)
                    elif verb == "remove" and value in labels:
                        labels.remove(value)
                    elif verb == "set" and isinstance(value, list):
                        labels = list(value)
            return self._validated_fields({"labels": labels}, errors)
        sets = [operation["set"] for operation in operations if isinstance(operation, dict) and "set" in operation]
        if len(sets) != len(operations) or not sets:
            errors[name] = f"The sandbox supports only 'set' operations on '{name}'."
            return {}
        return self._validated_fields({name: sets[-1]}, errors)

    def _validated_fields(self, fields: Mapping[str, Any], errors: dict[str, str],
                          messages: list[str] | None = None) -> dict[str, Any]:
        """Check settable fields the way Jira does; returns stored values (assignee as an account id).

        Field problems go to ``errors``; problems worth a sentence of their own (invalid ADF) also to ``messages``.
        """
        messages = [] if messages is None else messages
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name in self._hidden_fields:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            elif name == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors[name] = "You must specify a summary of the issue."
                elif len(value) > 255:
                    errors[name] = "Summary must be less than 255 characters."
                elif "\n" in value or "\r" in value:
                    errors[name] = "The summary is invalid because it contains newline characters."
                else:
                    values[name] = value
            elif name == "description":
                problem = None if value is None else adf_problem(value)
                if problem:
                    errors[name] = f"Operation value must be an Atlassian Document (see the Atlassian Document " \
                                   f"Format): {problem}"
                    messages.append(f"The {name} is not a valid Atlassian Document.")
                else:
                    values[name] = value
            elif name == self.external_id_field:
                if value is not None and not isinstance(value, str):
                    errors[name] = "Operation value must be a string"
                elif value is not None and len(value) > 255:
                    errors[name] = "The entered text is too long. It exceeds the allowed limit of 255 characters."
                else:
                    values[name] = value
            elif name == "labels":
                if not isinstance(value, list) or not all(isinstance(label, str) and label for label in value):
                    errors[name] = "Labels must be a list of non-empty strings."
                elif any(re.search(r"\s", label) for label in value):
                    spaced = next(label for label in value if re.search(r"\s", label))
                    errors[name] = f"The label '{spaced}' contains spaces which is invalid."
                else:
                    values[name] = list(dict.fromkeys(value))
            elif name == "assignee":
                account = value.get("accountId") if isinstance(value, dict) else None
                if value is not None and account not in self._users:
                    errors[name] = "Specified user does not exist or you do not have required permissions"
                else:
                    values[name] = account
            elif name == "priority":
                wanted = value if isinstance(value, dict) else {}
                chosen = next((p for p, pid in self.priorities.items()
                               if wanted.get("name") == p or str(wanted.get("id")) == pid), None)
                if chosen is None:
                    errors[name] = "Specify a valid 'id' or 'name' for Priority"
                else:
                    values[name] = chosen
            elif name == "duedate":
                if value is not None and not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
                                              and _is_date(value)):
                    errors[name] = f"Error parsing date string: {value}"
                else:
                    values[name] = value
            else:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
        return values

    def _list_changelog(self, request: Request, key: str) -> Response:
        """``GET /issue/{key}/changelog``: ``PageBeanChangelog``, oldest first, ``startAt``/``maxResults`` paging."""
        issue = self._find_issue_or_404(key)
        try:
            start = max(0, int(request.args.get("startAt", 0)))
            limit = max(1, min(100, int(request.args.get("maxResults", 100))))
        except ValueError:
            raise HttpError(400, ["startAt and maxResults must be integers."]) from None
        page = self._changelog_page(issue, start, limit)
        here = f"{self._issue_url(issue)}/changelog"
        body: dict[str, Any] = {"self": f"{here}?startAt={start}&maxResults={limit}", "startAt": start,
                                "maxResults": limit, "total": len(issue.changelog),
                                "isLast": start + limit >= len(issue.changelog), "values": page}
        if not body["isLast"]:
            body["nextPage"] = f"{here}?startAt={start + limit}&maxResults={limit}"
        return _json_response(200, body)

    @staticmethod
    def _changelog_page(issue: Issue, start: int, limit: int) -> list[dict[str, Any]]:
        """ChangeDetails declares from/to as non-nullable strings: an empty side is left out, as Jira does."""
        return [{**entry, "items": [{k: v for k, v in item.items() if v is not None} for item in entry["items"]]}
                for entry in copy.deepcopy(issue.changelog[start: start + limit])]

    def _link_issues(self, request: Request) -> Response:
        """``POST /issueLink``: 201 with no body; an unknown link type or issue is a 404, as in Jira Cloud."""
        body = _json_body(request)
        link_type = body.get("type") if isinstance(body.get("type"), dict) else None
        if link_type is None or not isinstance(body.get("inwardIssue"), dict) \
                or not isinstance(body.get("outwardIssue"), dict):
            raise HttpError(400, ["The request must name the link type, inwardIssue and outwardIssue."])
        name = next((n for n, (type_id, _, _) in LINK_TYPES.items()
                     if link_type.get("name") == n or str(link_type.get("id")) == type_id), None)
        if name is None:
            raise HttpError(404, [f"No issue link type with name '{link_type.get('name')}' found."])
        ends = []
        for side in ("inwardIssue", "outwardIssue"):
            reference = body[side].get("key") or body[side].get("id")
            found = next((i for i in self._issues.values() if str(reference) in (i.key, str(i.id))), None)
            if found is None:
                raise HttpError(404, [f"Issue {reference} does not exist or you do not have permission to see it."])
            ends.append(found)
        inward, outward = ends
        link = (name, inward.key, outward.key)
        if link not in self._links:  # Jira keeps one link of a type between two issues
            self._links.append(link)
        return Response(status=201)

    def issue_links(self, key: str) -> list[tuple[str, str, str]]:
        """``(type, inward key, outward key)`` of every link touching the issue."""
        with self._lock:
            return [link for link in self._links if key in link[1:]]

    def _list_comments(self, request: Request, key: str) -> Response:
        issue = self._find_issue_or_404(key)
        start = int(request.args.get("startAt", 0))
        limit = int(request.args.get("maxResults", 100))
        order = request.args.get("orderBy", "created")
        if order not in ("created", "+created", "-created"):
            raise HttpError(400, [f"Ordering by '{order}' is not supported: use created, +created or -created."])
        ordered = issue.comments[::-1] if order == "-created" else issue.comments
        page = ordered[start: start + limit]
        return _json_response(200, {"startAt": start, "maxResults": limit, "total": len(issue.comments),
                                    "comments": page})

    def _add_comment(self, request: Request, key: str) -> Response:
        issue = self._find_issue_or_404(key)
        body = _json_body(request).get("body")
        if body is None or not _adf_has_text(body):
            raise HttpError(400, ["Comment body can not be empty!"], {"comment": "Comment body can not be empty!"})
        problem = adf_problem(body)
        if problem:
            raise HttpError(400, [f"The comment body is not a valid Atlassian Document: {problem}"])
        if len(issue.comments) >= self.max_comments_per_issue:
            raise HttpError(413, ["This issue has reached its comment limit."])
        stamp = _jira_time(self.now())
        author = self._user_json(CONNECTOR_ACCOUNT)
        comment = {"self": f"{self._issue_url(issue)}/comment/{next(self._comment_ids)}", "author": author,
                   "body": body, "updateAuthor": author, "created": stamp, "updated": stamp, "jsdPublic": True}
        comment["id"] = comment["self"].rsplit("/", 1)[1]
        issue.comments.append(comment)
        return _json_response(201, comment)

    def _list_transitions(self, request: Request, key: str) -> Response:
        issue = self._find_issue_or_404(key)
        return _json_response(200, {"transitions": self._transitions_for(issue)})

    def _do_transition(self, request: Request, key: str) -> Response:
        issue = self._find_issue_or_404(key)
        body = _json_body(request)
        transition_id = str((body.get("transition") or {}).get("id", ""))
        target = next((name for name, (_, _, tid, _) in STATUSES.items()
                       if tid == transition_id and name != issue.fields["status"]), None)
        if target is None:
            raise HttpError(400, [f"Transition id '{transition_id}' is not valid for this issue."])
        resolution = ((body.get("fields") or {}).get("resolution") or {}).get("name")
        if resolution is not None and resolution not in RESOLUTIONS:
            raise HttpError(400, errors={"resolution": f"Resolution '{resolution}' does not exist."})
        extra = set(body.get("fields") or {}) - {"resolution"}
        if extra:
            raise HttpError(400, errors={name: f"Field '{name}' cannot be set. It is not on the appropriate screen, "
                                               f"or unknown." for name in extra})
        for operation in ((body.get("update") or {}).get("comment") or []):
            comment = (operation or {}).get("add", {}).get("body")
            problem = adf_problem(comment)
            if problem:
                raise HttpError(400, [f"The comment body is not a valid Atlassian Document: {problem}"])
            stamp = _jira_time(self.now())
            author = self._user_json(CONNECTOR_ACCOUNT)
            comment_id = str(next(self._comment_ids))
            issue.comments.append({"self": f"{self._issue_url(issue)}/comment/{comment_id}", "id": comment_id,
                                   "author": author, "body": comment, "updateAuthor": author, "created": stamp,
                                   "updated": stamp, "jsdPublic": True})
        change = self._move(issue, target, CONNECTOR_ACCOUNT, resolution)
        self._outbox.extend(self._plan_deliveries(issue, change))  # Jira tells webhooks of the app's own moves too
        return Response(status=204)

    # REST: search -----------------------------------------------------------------------------------------------------

    def _search_gone(self, request: Request) -> Response:
        raise HttpError(410, [SEARCH_GONE])

    def _search(self, request: Request) -> Response:
        if request.method == "POST":
            body = _json_body(request)
        else:
            body = {key: request.args.get(key) for key in ("jql", "nextPageToken", "maxResults", "fields",
                                                           "reconcileIssues") if request.args.get(key) is not None}
            for key in ("fields", "reconcileIssues"):
                if key in body:
                    body[key] = [part for part in body[key].split(",") if part]
        jql = body.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            raise HttpError(400, ["Unbounded JQL queries are not allowed here. Please add a search restriction "
                                  "to your query."])
        try:
            limit = int(body.get("maxResults") or 50)
            reconcile = {int(i) for i in body.get("reconcileIssues") or []}
        except (TypeError, ValueError):
            raise HttpError(400, ["maxResults and reconcileIssues must be integers."]) from None
        if len(reconcile) > 50:
            raise HttpError(400, ["reconcileIssues accepts at most 50 issue IDs."])
        fields = body.get("fields")
        if isinstance(fields, str):
            fields = fields.split(",")
        clause, order = self._parse_jql(jql, for_search=True)
        moment = self.now()
        hits = []
        for issue in self._issues.values():
            visible = issue.fields if (issue.id in reconcile or moment >= issue.indexed_at) else issue.index_snapshot
            if visible is not None and self._evaluate(clause, issue, visible, moment):
                hits.append((issue, visible))
        hits.sort(key=lambda hit: hit[0].id, reverse=True)
        for name, descending in reversed(order):
            hits.sort(key=lambda hit: self._order_key(name, hit[0], hit[1]), reverse=descending)
        only_ids = not fields or set(fields) <= {"id", "key"}
        page_size = max(1, min(limit, 5000 if only_ids else 100))
        fingerprint = hashlib.sha256(json.dumps([jql, fields], sort_keys=True).encode()).hexdigest()[:16]
        start = 0
        if body.get("nextPageToken"):
            start = _read_page_token(str(body["nextPageToken"]), fingerprint)
        page = hits[start: start + page_size]
        issues = [{"id": str(issue.id)} if not fields else
                  {"expand": "", "id": str(issue.id), "key": issue.key, "self": self._issue_url(issue),
                   "fields": self._render_fields(issue, visible, fields)} for issue, visible in page]
        result: dict[str, Any] = {"issues": issues, "isLast": start + page_size >= len(hits)}
        if not result["isLast"]:
            token = json.dumps({"q": fingerprint, "o": start + page_size}).encode()
            result["nextPageToken"] = base64.urlsafe_b64encode(token).decode().rstrip("=")
        return _json_response(200, result)

    # issue state ------------------------------------------------------------------------------------------------------

    def _new_issue(self, fields: dict[str, Any], *, created: float) -> Issue:
        issue_id = next(self._issue_ids)
        values = {"status": "To Do", "resolution": None, "resolutiondate": None, "issuetype": "Task",
                  "reporter": CONNECTOR_ACCOUNT, "creator": CONNECTOR_ACCOUNT, "created": created, "updated": created,
                  "statuscategorychangedate": created, **fields}
        issue = Issue(issue_id, f"{self.project_key}-{next(self._issue_numbers)}", values,
                      indexed_at=created + self.search_lag_seconds, index_snapshot=None)
        self._issues[issue_id] = issue
        return issue

    def _write(self, issue: Issue, values: Mapping[str, Any], change: dict[str, Any]) -> None:
        """Change fields; search keeps showing the previous version for ``search_lag_seconds``."""
        moment = self.now()
        visible = issue.fields if moment >= issue.indexed_at else issue.index_snapshot
        issue.index_snapshot = copy.deepcopy(visible)
        issue.fields.update(values)
        issue.fields["updated"] = moment
        issue.indexed_at = moment + self.search_lag_seconds
        issue.changelog.append(change)

    def _move(self, issue: Issue, status: str, actor: str, resolution: str | None = None) -> dict[str, Any]:
        old_status, old_resolution = issue.fields["status"], issue.fields.get("resolution")
        new_resolution, resolved_at = self._resolution_for(status, resolution, issue.fields.get("resolutiondate"))
        items = [self._status_item(old_status, status)]
        if new_resolution != old_resolution:
            items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                          "from": RESOLUTIONS.get(old_resolution or ""), "fromString": old_resolution,
                          "to": RESOLUTIONS.get(new_resolution or ""), "toString": new_resolution})
        change = self._changelog_entry(actor, items)
        values = {"status": status, "resolution": new_resolution, "resolutiondate": resolved_at}
        if STATUSES[status][1] != STATUSES[old_status][1]:
            values["statuscategorychangedate"] = self.now()
        self._write(issue, values, change)
        return change

    def _resolution_for(self, status: str, requested: str | None, resolved_at: float | None) -> tuple[Any, Any]:
        """Done-category statuses carry a resolution, others none. Company-managed: the one picked on the transition
        screen, by default named like the status (Won't Do) where such a resolution exists, else Done. Team-managed
        projects have no resolution screen: always Done, whatever the status."""
        if STATUSES[status][1] != "done":
            return None, None
        if self.project_style == "team-managed":
            return "Done", resolved_at or self.now()
        return requested or (status if status in RESOLUTIONS else "Done"), resolved_at or self.now()

    def _status_item(self, old: str, new: str) -> dict[str, Any]:
        return {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": STATUSES[old][0],
                "fromString": old, "to": STATUSES[new][0], "toString": new}

    def _changelog_entry(self, actor: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": str(next(self._changelog_ids)), "author": self._user_json(actor),
                "created": _jira_time(self.now()), "items": items}

    def _find_issue(self, key: str) -> Issue:
        for issue in self._issues.values():
            if issue.key == key or str(issue.id) == str(key):
                return issue
        raise KeyError(f"no issue {key} in the sandbox")

    def _find_issue_or_404(self, key: str) -> Issue:
        try:
            return self._find_issue(key)
        except KeyError:
            raise HttpError(404, ["Issue does not exist or you do not have permission to see it."]) from None

    def _transitions_for(self, issue: Issue) -> list[dict[str, Any]]:
        return [{"id": transition_id, "name": name, "to": self._status_json(status), "hasScreen": False,
                 "isGlobal": True, "isInitial": False, "isAvailable": True, "isConditional": False, "looped": False}
                for status, (_, _, transition_id, name) in STATUSES.items() if status != issue.fields["status"]]

    # JQL --------------------------------------------------------------------------------------------------------------

    def _parse_jql(self, jql: str, *, for_search: bool) -> tuple[Any, list[tuple[str, bool]]]:
        try:
            clause, order = _JqlParser(jql).parse()
            if clause is None:
                raise JqlError("Unbounded JQL queries are not allowed here. Please add a search restriction to your "
                               "query.")
            if not for_search and order:
                raise JqlError("ORDER BY is not supported in webhook JQL filters.")
            self._check_clauses(clause, for_search)
            for name, _ in order:
                if self._field_of(name) not in ("created", "updated", "resolutiondate", "issuekey", "status",
                                                "summary"):
                    raise JqlError(f"Field '{name}' cannot be used in ORDER BY here.")
        except JqlError as error:
            raise HttpError(400, [str(error)]) from None
        return clause, order

    def _field_of(self, name: str) -> str:
        lowered = name.strip().lower()
        aliases = {"project": "project", "issuekey": "issuekey", "key": "issuekey", "id": "issuekey",
                   "issuetype": "issuetype", "type": "issuetype", "status": "status",
                   "statuscategory": "statuscategory", "assignee": "assignee", "reporter": "reporter",
                   "labels": "labels", "summary": "summary", "created": "created", "updated": "updated",
                   "resolved": "resolutiondate", "resolutiondate": "resolutiondate",
                   f"cf[{self.external_id_field_number}]": self.external_id_field,
                   self.external_id_field_name.lower(): self.external_id_field}
        if lowered in aliases:
            return aliases[lowered]
        if lowered == self.external_id_field:
            raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it. Custom fields "
                           f"are written cf[{self.external_id_field_number}] in JQL.")
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")

    def _check_clauses(self, node: Any, for_search: bool) -> None:
        kind = node[0]
        if kind in ("and", "or"):
            for part in node[1]:
                self._check_clauses(part, for_search)
            return
        if kind == "not":
            if not for_search:
                raise JqlError("The NOT operator is unsupported in webhook JQL filters.")
            self._check_clauses(node[1], for_search)
            return
        _, name, operator, value = node
        if not for_search and name.lower().startswith("cf["):
            raise JqlError(f"The clause {name} is unsupported: webhook filters support only the epic label custom "
                           f"field.")
        target = self._field_of(name)
        text_fields = ("summary", self.external_id_field)
        if not for_search and (target not in ("issuekey", "project", "issuetype", "status", "assignee", "reporter")
                               or operator not in ("=", "!=", "in", "not in")):
            raise JqlError(f"The clause {name} {operator.upper()} is unsupported in webhook JQL filters.")
        label = self.external_id_field_name if target == self.external_id_field else name
        if target in text_fields:
            if operator not in ("~", "!~", "is", "is not"):
                raise JqlError(f"The operator '{operator.upper()}' is not supported by the '{label}' field.")
            if operator in ("~", "!~"):
                _text_terms(value)
            return
        if operator in ("~", "!~"):
            raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")
        if target in ("created", "updated", "resolutiondate"):
            if operator not in (">", ">=", "<", "<=", "is", "is not"):
                raise JqlError(f"The operator '{operator.upper()}' is not supported by the '{name}' field here.")
            if value is not None:
                _jql_time(value, 0.0)
            return
        if operator in (">", ">=", "<", "<="):
            raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")
        for item in value if isinstance(value, list) else ([value] if value is not None else []):
            self._check_value(target, name, item)

    def _check_value(self, target: str, name: str, value: str) -> None:
        known = {
            "project": {self.project_key.lower(), self.project_id, "acumatica payables"},
            "issuetype": {n.lower() for n in ISSUE_TYPES} | set(ISSUE_TYPES.values()),
            "status": {n.lower() for n in STATUSES} | {s[0] for s in STATUSES.values()},
            "statuscategory": {k for k in CATEGORIES} | {c["name"].lower() for c in CATEGORIES.values()}
            | {str(c["id"]) for c in CATEGORIES.values()},
        }.get(target)
        if known is not None and value.lower() not in known:
            raise JqlError(f"The value '{value}' does not exist for the field '{name}'.")

    def _evaluate(self, node: Any, issue: Issue, fields: Mapping[str, Any], moment: float) -> bool:
        kind = node[0]
        if kind == "and":
            return all(self._evaluate(part, issue, fields, moment) for part in node[1])
        if kind == "or":
            return any(self._evaluate(part, issue, fields, moment) for part in node[1])
        if kind == "not":
            return not self._evaluate(node[1], issue, fields, moment)
        _, name, operator, value = node
        target = self._field_of(name)
        if target in ("summary", self.external_id_field):
            actual = fields.get(target)
            if operator in ("is", "is not"):
                return (not actual) == (operator == "is")
            return _text_matches(value, actual) == (operator == "~")
        if target in ("created", "updated", "resolutiondate"):
            stamp = fields.get(target)
            if operator in ("is", "is not"):
                return (stamp is None) == (operator == "is")
            if stamp is None:  # an unresolved issue has no resolution date: no comparison matches
                return False
            bound = _jql_time(value, moment)
            return {">": stamp > bound, ">=": stamp >= bound, "<": stamp < bound, "<=": stamp <= bound}[operator]
        candidates = self._comparable(target, issue, fields)
        if operator in ("is", "is not"):
            return (not candidates) == (operator == "is")
        wanted = {v.lower() for v in (value if isinstance(value, list) else [value])}
        hit = bool(candidates & wanted)
        return hit if operator in ("=", "in") else not hit

    def _comparable(self, target: str, issue: Issue, fields: Mapping[str, Any]) -> set[str]:
        """Every spelling a JQL value may use for the issue's value of ``target`` (name, id, key), lower-cased."""
        if target == "project":
            return {self.project_key.lower(), self.project_id, "acumatica payables"}
        if target == "issuekey":
            return {issue.key.lower(), str(issue.id)}
        if target == "issuetype":
            return {fields["issuetype"].lower(), ISSUE_TYPES[fields["issuetype"]]}
        if target == "status":
            return {fields["status"].lower(), STATUSES[fields["status"]][0]}
        if target == "statuscategory":
            category = CATEGORIES[STATUSES[fields["status"]][1]]
            return {category["key"], category["name"].lower(), str(category["id"])}
        if target in ("assignee", "reporter"):
            return {fields[target].lower()} if fields.get(target) else set()
        if target == "labels":
            return {label.lower() for label in fields.get("labels") or []}
        raise JqlError(f"Field '{target}' cannot be compared here.")

    def _order_key(self, name: str, issue: Issue, fields: Mapping[str, Any]) -> Any:
        target = self._field_of(name)
        if target == "issuekey":
            return issue.id
        if target in ("created", "updated", "resolutiondate"):
            return fields.get(target) or 0
        return str(fields.get(target) or "")

    # rendering --------------------------------------------------------------------------------------------------------

    def _site_api(self) -> str:
        return f"{self.site_url}/rest/api/3"

    def _issue_url(self, issue: Issue) -> str:
        return f"{self._site_api()}/issue/{issue.id}"

    def _user_json(self, account_id: str) -> dict[str, Any]:
        """``UserDetails``: ``accountType`` and ``active`` are what tell a person from an app, a customer or a
        deactivated account."""
        account_type, active = self._accounts.get(account_id, ("atlassian", True))
        return {"self": f"{self._site_api()}/user?accountId={account_id}", "accountId": account_id,
                "accountType": account_type, "displayName": self._users.get(account_id, account_id),
                "active": active, "timeZone": "UTC"}

    def _project_json(self) -> dict[str, Any]:
        return {"self": f"{self._site_api()}/project/{self.project_id}", "id": self.project_id,
                "key": self.project_key, "name": "Acumatica payables", "projectTypeKey": "software",
                "simplified": False, "style": "classic"}

    def _status_json(self, name: str) -> dict[str, Any]:
        status_id, category_key, _, _ = STATUSES[name]
        category = CATEGORIES[category_key]
        return {"self": f"{self._site_api()}/status/{status_id}", "description": "", "iconUrl": "",
                "name": name, "id": status_id,
                "statusCategory": {"self": f"{self._site_api()}/statuscategory/{category['id']}", **category}}

    def _render_fields(self, issue: Issue, fields: Mapping[str, Any], wanted: Iterable[str] | None) -> dict[str, Any]:
        resolution = fields.get("resolution")
        rendered = {
            "summary": fields.get("summary"),
            "description": copy.deepcopy(fields.get("description")),
            "labels": list(fields.get("labels") or []),
            "assignee": self._user_json(fields["assignee"]) if fields.get("assignee") else None,
            "priority": ({"self": f"{self._site_api()}/priority/{self.priorities[fields['priority']]}", "iconUrl": "",
                          "name": fields["priority"], "id": self.priorities[fields["priority"]]}
                         if fields.get("priority") in self.priorities else None),
            "duedate": fields.get("duedate"),
            "reporter": self._user_json(fields["reporter"]),
            "creator": self._user_json(fields.get("creator") or CONNECTOR_ACCOUNT),
            "status": self._status_json(fields["status"]),
            "resolution": {"self": f"{self._site_api()}/resolution/{RESOLUTIONS[resolution]}",
                           "id": RESOLUTIONS[resolution], "name": resolution, "description": ""}
            if resolution else None,
            "resolutiondate": _jira_time(fields["resolutiondate"]) if fields.get("resolutiondate") else None,
            "issuetype": {"self": f"{self._site_api()}/issuetype/{ISSUE_TYPES[fields['issuetype']]}",
                          "id": ISSUE_TYPES[fields["issuetype"]], "name": fields["issuetype"], "subtask": False,
                          "hierarchyLevel": 0},
            "project": self._project_json(),
            "created": _jira_time(fields["created"]),
            "updated": _jira_time(fields["updated"]),
            "statuscategorychangedate": _jira_time(fields["statuscategorychangedate"]),
            self.external_id_field: fields.get(self.external_id_field),
        }
        if wanted is None:
            return rendered
        names = {name.strip() for name in wanted if name.strip()}
        chosen = set(rendered) if names & {"*all", "*navigable"} else names & set(rendered)
        chosen -= {name[1:] for name in names if name.startswith("-")}
        return {name: value for name, value in rendered.items() if name in chosen}

    def _issue_json(self, issue: Issue, wanted: Iterable[str] | None) -> dict[str, Any]:
        return {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
                "id": str(issue.id), "self": self._issue_url(issue), "key": issue.key,
                "fields": self._render_fields(issue, issue.fields, wanted)}
