"""`connector ping`: the end-to-end checklist, answered within ``timings.OPERATOR_ANSWER_SECONDS`` whatever is down.

Every check makes its own call to the system it checks (no cached answer). The checks form a graph: first each host
the settings point at is reached with one plain request, then what needs that host (the endpoint version, a token,
the project...). They run concurrently, except that the checks sharing one OAuth grant run one at a time (two token
refreshes at once would wait on each other's lease). A check whose prerequisite failed is skipped, saying which; a
check still waiting at the deadline is reported as not answered in time. Each failure says what failed, in the
words of its cause (a host that does not answer is not a wrong project key), and the fix that matches that cause.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TextIO

from connector import timings

from .output import StatusLine, clean
from .reach import Endpoint, HostUnreachable, endpoints, probe, unreachable


@dataclass(frozen=True)
class Check:
    """One line of the checklist: what is checked, how, after what, and what to do when it fails."""

    id: str
    name: str
    run: Callable[[], Any]
    needs: tuple[str, ...] = ()
    fix: str = ""
    """The fix when the check fails for its own reason (``fixes`` has none for the error's type)."""
    fixes: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = ()
    """``(error types, fix)`` pairs, first match wins: a refused credential and a missing project differ."""
    serial: str | None = None
    """Checks with the same key run one at a time (one token refresh per grant)."""


@dataclass
class Outcome:
    check: Check
    status: str = "waiting"
    """``waiting``, ``running``, then ``ok``, ``warn`` (holds, with a note), ``n/a`` (nothing to check), ``fail``,
    ``skip`` or ``late``."""
    error: str = ""
    fix: str = ""
    started: float | None = None
    table: list[dict[str, str]] = field(default_factory=list)
    """What a check shows under its line (``authority.Shown``: who may decide what)."""

    @property
    def passed(self) -> bool:
        """``ok``; ``warn``, a check that holds with something the operator should read; ``n/a``, one the
        configuration makes pointless."""
        return self.status in PASSED

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"check": self.check.name, "ok": self.passed, "status": self.status}
        if self.status == "warn":
            entry.update(warning=self.error, fix=self.fix)
        elif self.status == "n/a":
            entry.update(reason=self.error)
        elif self.status != "ok":
            entry.update(error=self.error, fix=self.fix)
        if self.table:
            entry["table"] = self.table
        return entry


PASSED = ("ok", "warn", "n/a")


@dataclass
class Checklist:
    """Runs ``checks`` as their prerequisites allow, each in a daemon thread (one stuck call cannot hold the
    command past its deadline, nor the interpreter at exit)."""

    checks: Sequence[Check]
    env: Mapping[str, str]
    deadline_seconds: float = timings.PING_DEADLINE_SECONDS
    on_change: Callable[[list[Outcome]], None] = lambda outcomes: None
    outcomes: dict[str, Outcome] = field(init=False)

    def __post_init__(self) -> None:
        self.outcomes = {check.id: Outcome(check) for check in self.checks}
        unknown = {need for check in self.checks for need in check.needs} - self.outcomes.keys()
        if unknown:
            raise ValueError(f"checks need unknown checks {sorted(unknown)}")
        self._changed = threading.Condition()
        self._serial: dict[str, threading.Lock] = {}

    def run(self) -> list[Outcome]:
        deadline = time.monotonic() + self.deadline_seconds
        with self._changed:
            while True:
                self._advance()
                self.on_change(list(self.outcomes.values()))
                pending = [o for o in self.outcomes.values() if o.status in ("waiting", "running")]
                left = deadline - time.monotonic()
                if not pending or left <= 0:
                    break
                self._changed.wait(timeout=left)
            for outcome in self.outcomes.values():
                if outcome.status == "running":
                    outcome.status, outcome.error = "late", f"no answer within {self.deadline_seconds:g} s"
                    outcome.fix = ("the system answers too slowly for a check; try again, and look at its health "
                                   "and the network if it persists")
            for outcome in self.outcomes.values():
                if outcome.status == "waiting":
                    late = [self.outcomes[need].check.name for need in outcome.check.needs
                            if self.outcomes[need].status in ("late", "waiting")]
                    outcome.status, outcome.error = "skip", f"not checked, because {' and '.join(late)} did not " \
                                                             "finish in time"
        return [self.outcomes[check.id] for check in self.checks]

    def _advance(self) -> None:
        """Start what may start, skip what cannot run any more (called holding ``_changed``)."""
        progressed = True
        while progressed:
            progressed = False
            for outcome in self.outcomes.values():
                if outcome.status != "waiting":
                    continue
                needs = [self.outcomes[need] for need in outcome.check.needs]
                failed = [need.check.name for need in needs if need.status in ("fail", "skip", "late")]
                if failed:
                    outcome.status = "skip"
                    outcome.error = f"not checked, because {', '.join(failed)} did not pass"
                    progressed = True
                elif all(need.passed for need in needs):
                    outcome.status, outcome.started = "running", time.monotonic()
                    threading.Thread(target=self._perform, args=(outcome,), daemon=True,
                                     name=f"ping-{outcome.check.id}").start()

    def _perform(self, outcome: Outcome) -> None:
        from .authority import Advisory, NotNeeded, Shown

        check = outcome.check
        lock = None
        if check.serial:
            with self._changed:
                lock = self._serial.setdefault(check.serial, threading.Lock())
        shown: Any = None
        try:
            if lock:
                with lock:
                    shown = check.run()
            else:
                shown = check.run()
        except Advisory as note:
            status, message, fix = "warn", str(note), check.fix
        except NotNeeded as why:
            status, message, fix = "n/a", str(why), ""
        except Exception as error:  # noqa: BLE001 - every failure is reported, each with its own cause
            status, (message, fix) = "fail", explain(check, error, self.env)
        else:
            status, message, fix = "ok", "", ""
        with self._changed:
            if outcome.status == "running":  # not already reported late
                outcome.status, outcome.error, outcome.fix = status, message, fix
                outcome.table = shown.rows if isinstance(shown, Shown) else []
            self._changed.notify_all()


def explain(check: Check, error: BaseException, env: Mapping[str, str]) -> tuple[str, str]:
    """What failed and what to do, by cause: an unreachable host first, then the check's own fixes by error type."""
    if isinstance(error, HostUnreachable):  # a reach check: its name already says which host
        return error.why.detail, error.why.fix
    why = unreachable(error, env)
    if why is not None:
        return why.message, why.fix
    text = describe(error)
    for types, fix in check.fixes:
        if isinstance(error, types):
            return text, fix
    aws = _aws_fix(error)
    return text, aws or check.fix


def describe(error: BaseException) -> str:
    """The error in words, without Python's type names (an AWS refusal keeps the service's error code)."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}"
    return clean(str(error) or type(error).__name__)


def _aws_fix(error: BaseException) -> str | None:
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(error, NoCredentialsError):
        return "give this shell AWS credentials (AWS_PROFILE, `aws sso login`, or the local stack's environment file)"
    if isinstance(error, NoRegionError):
        return "set AWS_REGION (or AWS_DEFAULT_REGION) to the stack's region"
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if "NotFound" in code or "NonExistent" in code:
            return ("the stack's resources are not there: run with --stack <stack> (its outputs name them), or load "
                    "the environment file of the running `connector local`")
        if "AccessDenied" in code or "Unauthorized" in code or "Forbidden" in code:
            return "the AWS identity of this shell lacks that right: use one allowed to operate the stack"
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException"):
            return "this shell's AWS credentials are not valid (expired?): sign in again"
    return None


def checklist(wiring: Any, env: Mapping[str, str]) -> list[Check]:
    """The checks of ``connector ping`` for this configuration, prerequisites first."""
    from connector.errors import AuthenticationError, ConfigurationError, NotFoundError, ReconnectNeeded

    from . import authority
    from .preview import check_owner_map

    settings = wiring.settings
    checks: list[Check] = []
    reached: dict[str, str] = {}
    for endpoint in endpoints(env):
        check_id = f"reach:{endpoint.origin}"
        checks.append(Check(check_id, f"{endpoint.label} answers", _prober(endpoint)))
        for variable, _ in endpoint.settings:
            reached[variable] = check_id

    def after(*variables: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(reached[v] for v in variables if v in reached))

    aws = ("aws",)
    checks.append(Check("aws", "table, work queue and secrets reachable", lambda: _aws_reachable(wiring),
                        after("AWS_ENDPOINT_URL"), fix="check the stack's outputs (--stack) and your AWS credentials",
                        fixes=((ConfigurationError, "run with --stack <stack>, or load the environment file of the "
                                                    "running `connector local`"),)))
    connect_acumatica = "run `connector connect acumatica` (the stored credentials were refused)"
    checks.append(Check("acumatica-version", "Acumatica endpoint version",
                        lambda: wiring.acumatica.check_endpoint_version(), after("ACUMATICA_URL"),
                        fix="check that AcumaticaUrl is the instance's base URL (GET /entity lists its endpoints)",
                        fixes=((ConfigurationError, "set AcumaticaEndpointVersion to a version GET /entity lists "
                                                    f"(now {settings.acumatica_endpoint_version})"),)))
    reads = []
    for entity in settings.document_types:
        reads.append(f"acumatica-read:{entity}")
        checks.append(Check(reads[-1], f"Acumatica {entity} readable with the selected fields",
                            _reader(wiring, entity), ("acumatica-version", *aws), serial="acumatica",
                            fix="run `connector connect acumatica`; give the API user access to the screen",
                            fixes=(((AuthenticationError, ReconnectNeeded, ConfigurationError), connect_acumatica),
                                   (NotFoundError, f"give the API user access to the {entity} screen"))))
    approving = tuple(f"acumatica-read:{e}" for e in ("Bill", "PurchaseOrder") if e in settings.document_types)
    checks.append(Check("acumatica-action", f"Acumatica workflow action {settings.approve_action!r}",
                        lambda: _has_action(wiring), approving or ("acumatica-version", *aws), serial="acumatica",
                        fix="set ApproveActionName (or ApproveActionNames) to one of the listed actions",
                        fixes=(((AuthenticationError, ReconnectNeeded), connect_acumatica),)))
    connect_jira = "run `connector connect jira` (the stored grant was refused or is missing)"
    checks.append(Check("jira-token", "Jira token and cloudId", lambda: _jira_site(wiring),
                        (*aws, *after("JIRA_API_URL", "JIRA_AUTH_URL")), serial="jira", fix=connect_jira,
                        fixes=(((AuthenticationError, ReconnectNeeded), connect_jira),
                               ((ConfigurationError, LookupError),
                                "set JiraSiteUrl to the site the grant was connected to, or run `connector connect "
                                "jira --site <JiraSiteUrl>` to connect that one"))))
    checks.append(Check("jira-project", f"Jira project {settings.jira_project_key}", lambda: wiring.jira.project(),
                        ("jira-token",), serial="jira",
                        fix="set JiraProjectKey to a project the connected account can browse",
                        fixes=(((AuthenticationError, ReconnectNeeded), connect_jira),)))
    checks.append(Check("jira-field", f"Jira field {settings.jira_external_id_field}", lambda: _has_field(wiring),
                        ("jira-token",), serial="jira",
                        fix="create a single-line text custom field and set JiraExternalIdField to its id",
                        fixes=(((AuthenticationError, ReconnectNeeded), connect_jira),)))
    checks.append(Check("owner-map", "OwnerMap covers the owners of recent exception documents",
                        lambda: check_owner_map(wiring), tuple(reads) or ("acumatica-version",), serial="acumatica",
                        fix="add the named owners to OwnerMap (Acumatica owner -> Jira accountId)",
                        fixes=(((AuthenticationError, ReconnectNeeded), connect_acumatica),)))
    checks += authority.checks(wiring, tables=aws, acumatica=("acumatica-version",), jira=("jira-token",))
    return checks


def run(wiring: Any, env: Mapping[str, str], fmt: str, out: TextIO | None = None,
        status_to: TextIO | None = None) -> int:
    """Run the checklist and print it; exit 0 when every check passed, 1 otherwise."""
    out = out or sys.stdout
    status_to = status_to or sys.stderr
    from connector.errors import ConfigurationError

    for shared in ("store", "acumatica"):  # built here, once, for the checks' threads to share
        try:
            getattr(wiring, shared)
        except ConfigurationError:
            pass  # a missing resource name: the checks that need it say so
    checks = checklist(wiring, env)
    with StatusLine(status_to, f"checking {len(checks)} things") as status:
        results = Checklist(checks, env, on_change=lambda outcomes: status.update(_progress(outcomes))).run()
    if fmt == "json":
        print(json.dumps([result.as_json() for result in results], indent=2), file=out)
    else:
        from .authority import render

        for result in results:
            if result.status == "ok":
                print(f"ok    {clean(result.check.name)}", file=out)
                render(result.table, out)
            elif result.status == "n/a":
                print(f"n/a   {clean(result.check.name)}: {clean(result.error)}", file=out)
            elif result.status == "warn":
                print(f"WARN  {clean(result.check.name)}: {clean(result.error)}\n      fix: {clean(result.fix)}",
                      file=out)
            elif result.status == "skip":
                print(f"skip  {clean(result.check.name)}: {clean(result.error)}", file=out)
            else:
                print(f"FAIL  {clean(result.check.name)}: {clean(result.error)}\n      fix: {clean(result.fix)}",
                      file=out)
    return 0 if all(result.passed for result in results) else 1


def _progress(outcomes: Sequence[Outcome]) -> str:
    running = [o.check.name for o in outcomes if o.status == "running"]
    done = sum(1 for o in outcomes if o.status not in ("waiting", "running"))
    return f"{done}/{len(outcomes)} checked; waiting on: {', '.join(running[:3]) or '-'}"


def _prober(endpoint: Endpoint) -> Callable[[], int]:
    return lambda: probe(endpoint)


def _reader(wiring: Any, entity: str) -> Callable[[], None]:
    """Read one page of one record: proves the token (a fresh call, refreshed if Acumatica refuses it) and $select."""
    def read() -> None:
        from datetime import datetime, timezone

        next(iter(wiring.acumatica.changed_pages(entity, datetime(1970, 1, 1, tzinfo=timezone.utc), page_size=1)),
             None)

    return read


def _aws_reachable(wiring: Any) -> None:
    import boto3

    wiring.store.get_cursor(wiring.settings.document_types[0])
    boto3.client("sqs").get_queue_attributes(QueueUrl=wiring.settings.work_queue_url, AttributeNames=["QueueArn"])
    wiring.acumatica_secret.read()
    wiring.jira_secret.read()


def _has_action(wiring: Any) -> None:
    for entity in ("Bill", "PurchaseOrder"):
        if entity in wiring.settings.document_types:
            actions = wiring.acumatica.workflow_actions(entity)
            wanted = wiring.settings_in_effect().approve_actions.get(entity) or wiring.settings.approve_action
            if wanted.casefold() not in {action.casefold() for action in actions}:
                raise LookupError(f"{entity} offers {', '.join(actions) or 'no workflow action'}, not {wanted!r}")


def _jira_site(wiring: Any) -> None:
    """The stored grant works against the stored cloudId (``/myself``), and that cloudId is JiraSiteUrl's. ``/myself``
    alone answers as well for a cloudId stored for another site the grant reaches (JiraSiteUrl changed after `connect
    jira`): issues would then be written to that other team's Jira, with links pointing at JiraSiteUrl."""
    from connector.jira import resolve_cloud_id

    wiring.jira.myself()
    site = wiring.settings.jira_site_url
    if site:  # unset: the person chose the site at connect time, among those the grant reaches
        named = resolve_cloud_id(wiring.settings.jira_api_url, wiring.jira_tokens.access_token(), site, wiring.http)
        if named != wiring.cloud_id:
            raise LookupError(f"the stored cloudId {wiring.cloud_id} is another site's: JiraSiteUrl {site} is "
                              f"{named}")


def _has_field(wiring: Any) -> None:
    if not wiring.jira.field_exists(wiring.settings.jira_external_id_field):
        raise LookupError("no such field in this Jira site")
