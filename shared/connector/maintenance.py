"""Upkeep. Daily (``MaintenanceSchedule``): keep the Jira dynamic webhook alive (it expires after 30 days), keep both
OAuth refresh chains in use, check that the configuration still matches both systems, keep the webhook function's
copy of the verification material in step, and (``connector.deletions``) notice the documents deleted behind open
issues; each check reports on its own, one failing does not skip the others. Every ``ResolutionSweepMinutes``: sweep
Jira for resolutions whose delivery never arrived (``sweep_resolutions``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from . import timings
from .config import Settings
from .jira import escape_jql_string
from .model import DocumentKey, WorkMessage
from .ports import Cursor, SecretStore, StateStore, WorkQueue

SWEEP_CURSOR = "jira-resolutions"
"""Cursor name (``WM#jira-resolutions``) of the resolution sweep: its watermark is when the last sweep began."""
SWEEP_OVERLAP = timedelta(seconds=timings.RESOLUTION_SWEEP_OVERLAP_SECONDS)
"""Re-read before the last sweep: Jira search lags a change, and a re-read decision ends as a duplicate."""
SWEEP_GRACE = timedelta(seconds=timings.RESOLUTION_SWEEP_GRACE_SECONDS)
"""Resolutions younger than this are left to their delivery; the next sweep's overlap reaches back over them."""
FIRST_SWEEP = timedelta(days=2)
"""How far back the very first sweep looks (longer than Jira's 30 minutes of delivery retries, and than a day)."""

logger = logging.getLogger(__name__)


@dataclass
class MaintenanceReport:
    checks: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def run(self, name: str, check: Callable[[], str]) -> None:
        try:
            self.checks[name] = check()
        except Exception as exc:  # noqa: BLE001 - every check reports; the handler raises once at the end
            logger.exception("maintenance check failed", extra={"check": name})
            self.failures[name] = f"{type(exc).__name__}: {exc}"


def resolution_sweep_jql(settings: Settings, minutes: int, grace_minutes: int = 0) -> str:
    """Issues of the project resolved between ``minutes`` and ``grace_minutes`` ago. Relative time, so neither side's
    time zone or clock offset matters.

    With the default resolved statuses (category done) the window is on ``resolved``: only issues resolved in it match,
    however often they are commented on later, which keeps a sweep every few minutes cheap. Statuses named in
    ``JiraResolvedStatuses`` need not set a resolution, so there the window is on ``updated`` (a move into a status
    updates the issue)."""
    if settings.jira_resolved_statuses:
        names = ", ".join(f'"{escape_jql_string(name)}"' for name in settings.jira_resolved_statuses)
        resolved, stamp = f"status IN ({names})", "updated"
    else:
        resolved, stamp = "statusCategory = Done", "resolved"
    window = f'{stamp} >= "-{minutes}m"' + (f' AND {stamp} <= "-{grace_minutes}m"' if grace_minutes else "")
    return (f'project = "{escape_jql_string(settings.jira_project_key)}" AND {resolved} AND {window} '
            f"ORDER BY {stamp} ASC")


def sweep_resolutions(settings: Settings, *, jira: Any, store: StateStore, queue: WorkQueue, now: datetime,
                      correlation_id: str) -> str:
    """Queue a ``resolve`` for every issue resolved since the last sweep (``ResolutionSweepMinutes`` ago), reaching
    back ``SWEEP_OVERLAP`` and leaving the last ``SWEEP_GRACE`` to the deliveries on their way.

    Jira stops retrying a delivery after about 30 minutes and never retries a 4xx, and a private app's dynamic
    webhooks reach only its owner: a decision can be lost. The worker puts each one through the same checks and the
    same decision-keyed claims as a delivery, so webhook and sweep never act twice; already handled decisions end
    as duplicates without reading Acumatica, and one that nothing had handled is counted as undelivered
    (``UndeliveredResolutions``). Issues naming a document of an entity outside ``DocumentTypes`` are left alone,
    as the webhook leaves their deliveries. The watermark moves only after every message is durably queued."""
    cursor = store.get_cursor(SWEEP_CURSOR)
    since = cursor.watermark - SWEEP_OVERLAP if cursor.watermark else now - FIRST_SWEEP
    minutes = max(1, math.ceil((now - since).total_seconds() / 60))
    grace = math.ceil(SWEEP_GRACE.total_seconds() / 60)
    messages: dict[str, WorkMessage] = {}
    for issue in jira.search_issues(resolution_sweep_jql(settings, minutes, grace), fields=("status", "summary")):
        try:
            key = DocumentKey.parse((issue.external_id or "").strip())
        except ValueError:
            continue
        if key.entity not in settings.document_types:  # as the webhook: only the configured entities are acted on
            continue
        messages[issue.id] = WorkMessage(
            kind="resolve", external_id=key.external_id, dedupe_id=f"sweep:{issue.id}:{now:%Y%m%dT%H%M}",
            correlation_id=correlation_id, source="sweep", issue_key=issue.key, issue_id=issue.id,
            status_name=issue.status or None, reason=f"{issue.key} found in {issue.status} by the resolution sweep")
    batch = list(messages.values())
    queue.send(batch)
    store.audit_queued(batch)
    # The sweep's window is relative ("-N m" in Jira's clock); only the elapsed time between sweeps, both read from
    # this clock, decides N, so this watermark may come from here.
    store.put_cursor(SWEEP_CURSOR, Cursor(watermark=now, watermark_text=now.isoformat()))
    return (f"{len(batch)} resolved issue(s) of the last {minutes} minutes (but the last {grace}) queued for the "
            "worker's checks")


def copy_verification_material(jira_secret: SecretStore, acumatica_secret: SecretStore,
                               webhook_secret: SecretStore) -> str:
    """The webhook function may read only its own secret: make its copy of the verification material (the Jira
    webhook secret, the OAuth client secret of dynamic-webhook JWTs, the Jira site's cloud id and the Acumatica push
    secret) equal to the two credential secrets. Equal means empty too: a secret cleared at its source (a push secret
    an administrator revoked) stops authenticating deliveries at once, instead of living on in the copy. Also fills
    the copy after an upgrade from a version that read both whole secrets; ``connector connect`` calls it as well."""
    jira, acumatica = jira_secret.read(), acumatica_secret.read()
    material = {"webhook_secret": jira.get("webhook_secret"), "client_secret": jira.get("client_secret"),
                "cloud_id": jira.get("cloud_id"), "push_secret": acumatica.get("push_secret")}
    current = webhook_secret.read()
    wanted = {**current, **{name: str(value or "") for name, value in material.items()}}
    if wanted == current:
        return "webhook verification material is current"
    webhook_secret.write(wanted)
    return "webhook verification material copied: " + ", ".join(
        sorted(name for name in material if wanted.get(name) != current.get(name)))


def webhook_jql(settings: Settings) -> str:
    """A filter within the JQL subset dynamic webhooks accept (project, =)."""
    return f'project = "{settings.jira_project_key}"'


def run_maintenance(settings: Settings, *, acumatica: Any, jira: Any, acumatica_tokens: Any, jira_tokens: Any,
                    jira_secret: SecretStore, dead_letters: Callable[[], int],
                    verification: Callable[[], str] | None = None,
                    sweep: Callable[[], str] | None = None,
                    deletions: Callable[[], str] | None = None) -> MaintenanceReport:
    """``dead_letters`` counts the messages waiting in the DLQ (visible or in flight); ``verification`` keeps the
    webhook function's secret in step, ``sweep`` queues lost resolutions and ``deletions`` the open issues whose
    document Acumatica no longer has (``connector.deletions``); each runs when given (the deployed handler sweeps on
    its own schedule instead)."""
    report = MaintenanceReport()

    def acumatica_version() -> str:
        acumatica.check_endpoint_version()
        return f"endpoint Default/{settings.acumatica_endpoint_version} is served"

    def refresh(tokens: Any) -> Callable[[], str]:
        return lambda: (tokens.access_token() and "token valid")

    def jira_project() -> str:
        jira.project()
        if not jira.field_exists(settings.jira_external_id_field):
            raise LookupError(f"Jira has no field {settings.jira_external_id_field}")
        return f"project {settings.jira_project_key} and field {settings.jira_external_id_field} exist"

    def webhook() -> str:
        if not settings.webhook_url:
            return "no WEBHOOK_URL configured: relying on an admin webhook"
        secret = jira_secret.read()
        ids, expires = jira.ensure_webhook(settings.webhook_url, webhook_jql(settings), secret.get("webhook_ids") or ())
        jira_tokens.update_secret(lambda current: {**current, "webhook_ids": list(ids),
                                                   "webhook_expires_at": expires.isoformat()})
        return f"webhooks {ids} live until {expires.isoformat()}"

    report.run("acumatica_token", refresh(acumatica_tokens))
    report.run("acumatica_endpoint", acumatica_version)
    report.run("jira_token", refresh(jira_tokens))
    report.run("jira_project", jira_project)
    def dead_letter_queue() -> str:
        waiting = dead_letters()
        if waiting:
            raise RuntimeError(f"{waiting} message(s) wait in the dead-letter queue: fix the cause (connector audit), "
                               "then run connector replay")
        return "dead-letter queue empty"

    report.run("jira_webhook", webhook)
    report.run("dead_letter_queue", dead_letter_queue)
    if verification is not None:
        report.run("webhook_verification_material", verification)
    if sweep is not None:
        report.run("resolution_sweep", sweep)
    if deletions is not None:
        report.run("deleted_documents", deletions)
    return report
