"""Daily upkeep: keep the Jira dynamic webhook alive (it expires after 30 days), keep both OAuth refresh chains in
use, and check that the configuration still matches both systems. Each check reports on its own; one failing does
not skip the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import Settings
from .ports import SecretStore

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


def webhook_jql(settings: Settings) -> str:
    """A filter within the JQL subset dynamic webhooks accept (project, =)."""
    return f'project = "{settings.jira_project_key}"'


def run_maintenance(settings: Settings, *, acumatica: Any, jira: Any, acumatica_tokens: Any, jira_tokens: Any,
                    jira_secret: SecretStore, dead_letters: Callable[[], int]) -> MaintenanceReport:
    """``dead_letters`` counts the messages waiting in the DLQ (visible or in flight)."""
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
    return report
