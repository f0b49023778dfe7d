"""Configuration, parsed once per container from the environment and passed down.

Every template parameter (docs/contract.md) has an upper-snake-case environment variable of the same name (the template
sets them for Lambda; the local run takes them from the shell). The routing and tuning tables are parsed by their
one validator in ``connector.tables`` (the template hands them to the functions in the parameter-tables secret, not in
the environment; see docs/tables.md). Nothing below the handlers reads ``os.environ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .decisions import DecisionPolicy
from .documents import PROFILES
from .errors import ConfigurationError
from .rules import EXCEPTION_RULES, RuleTable
from .tables import apply_tables, tables_from_parameters
from .triage import TriageRules
from .urls import base_url_problem, shown


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    acumatica_url: str
    jira_project_key: str
    jira_external_id_field: str
    acumatica_endpoint_version: str = "24.200.001"
    jira_api_url: str = "https://api.atlassian.com"
    jira_auth_url: str = "https://auth.atlassian.com"
    jira_issue_type: str = "Task"
    jira_resolved_statuses: tuple[str, ...] = ()
    jira_site_url: str = ""
    jira_cleared_status: str = ""
    jira_labels: tuple[str, ...] = ("acumatica",)
    document_types: tuple[str, ...] = ("Bill", "PurchaseOrder", "Check")
    owner_map: Mapping[str, str] = field(default_factory=dict)
    exception_rules: RuleTable = field(default_factory=lambda: EXCEPTION_RULES)
    approve_action: str = "Approve"
    approve_actions: Mapping[str, str] = field(default_factory=dict)
    """Entity → approval action (``ApproveActionNames``), for instances whose bills and orders name it differently."""
    jira_reopen_status: str = ""
    approval_reason: str = "Approved in Jira"
    """``ApprovalReason``: the reason an approval gives Acumatica when the deciding person left no note in Jira."""
    push_secret_header: str = "X-Connector-Secret"
    poll_overlap_minutes: int = 10
    poll_page_size: int = 500
    initial_lookback_days: int = 0
    full_pass_days: int = 7
    acumatica_requests_per_minute: int = 0
    work_freshness_seconds: int = 300
    audit_retention_days: int = 400
    webhook_url: str = ""
    table_name: str = ""
    work_queue_url: str = ""
    dead_letter_queue_url: str = ""
    acumatica_secret_id: str = ""
    jira_secret_id: str = ""
    webhook_secret_id: str = ""
    parameter_tables_id: str = ""
    """The secret the template writes the table parameters into (``PARAMETER_TABLES_ARN``, docs/tables.md)."""
    poller_function_name: str = ""
    """The poller the worker asks to poll now (``connector.pollnow``); set for the worker only."""
    triage: TriageRules = field(default_factory=TriageRules)
    """Routing, priority and escalation tables (``PriorityTable``, ``VendorOwners``, ``EscalationDays``...)."""
    decision_policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    """What a resolution means and who may decide (``ApprovingResolutions``, ``DecliningStatuses``,
    ``NonPersonAccounts``, ``DeclineAction``, ``DecisionAuthority``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate; a missing or malformed value is a ``ConfigurationError`` naming the variable (a table's
        names its parameter too)."""
        missing = [name for name in ("ACUMATICA_URL", "JIRA_PROJECT_KEY", "JIRA_EXTERNAL_ID_FIELD") if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing required configuration: {', '.join(missing)}")
        document_types = _csv(env.get("DOCUMENT_TYPES", "Bill,PurchaseOrder,Check"))
        unknown = [t for t in document_types if t not in PROFILES]
        if unknown:
            raise ConfigurationError(f"DOCUMENT_TYPES has unsupported entities {unknown}; supported: {list(PROFILES)}")
        field_id = env["JIRA_EXTERNAL_ID_FIELD"]
        if not field_id.startswith("customfield_") or not field_id.removeprefix("customfield_").isdigit():
            raise ConfigurationError(f"JIRA_EXTERNAL_ID_FIELD must look like customfield_10050, got {field_id!r}")

        def integer(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
            raw = env.get(name) or str(default)
            try:
                value = int(raw)
            except ValueError:
                raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
            if value < minimum or (maximum is not None and value > maximum):
                allowed = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
                raise ConfigurationError(f"{name} must be {allowed}, got {value}")
            return value

        for name in ("ACUMATICA_URL", "JIRA_API_URL", "JIRA_AUTH_URL", "JIRA_SITE_URL"):
            problem = base_url_problem(env[name]) if env.get(name) else None
            if problem:
                raise ConfigurationError(f"{name} {problem}, got {shown(env[name])}")

        settings = cls(
            acumatica_url=env["ACUMATICA_URL"].rstrip("/"),
            acumatica_endpoint_version=env.get("ACUMATICA_ENDPOINT_VERSION") or "24.200.001",
            jira_api_url=(env.get("JIRA_API_URL") or "https://api.atlassian.com").rstrip("/"),
            jira_auth_url=(env.get("JIRA_AUTH_URL") or "https://auth.atlassian.com").rstrip("/"),
            jira_project_key=env["JIRA_PROJECT_KEY"],
            jira_issue_type=env.get("JIRA_ISSUE_TYPE") or "Task",
            jira_external_id_field=field_id,
            jira_resolved_statuses=_csv(env.get("JIRA_RESOLVED_STATUSES", "")),
            jira_site_url=(env.get("JIRA_SITE_URL") or "").rstrip("/"),
            jira_cleared_status=env.get("JIRA_CLEARED_STATUS", ""),
            jira_labels=_csv(env.get("JIRA_LABELS", "acumatica")),
            document_types=document_types,
            approve_action=env.get("APPROVE_ACTION_NAME") or "Approve",
            jira_reopen_status=env.get("JIRA_REOPEN_STATUS", ""),
            approval_reason=" ".join((env.get("APPROVAL_REASON") or "Approved in Jira").split()),
            push_secret_header=env.get("PUSH_SECRET_HEADER") or "X-Connector-Secret",
            poll_overlap_minutes=integer("POLL_OVERLAP_MINUTES", 10, 0, 1440),
            poll_page_size=integer("POLL_PAGE_SIZE", 500, 1, 10000),
            initial_lookback_days=integer("INITIAL_LOOKBACK_DAYS", 0),
            full_pass_days=integer("FULL_PASS_DAYS", 7),
            acumatica_requests_per_minute=integer("ACUMATICA_REQUESTS_PER_MINUTE", 0),
            work_freshness_seconds=integer("WORK_FRESHNESS_SECONDS", 300, 0, 600),
            audit_retention_days=integer("AUDIT_RETENTION_DAYS", 400, 1),
            webhook_url=env.get("WEBHOOK_URL", ""),
            table_name=env.get("TABLE_NAME", ""),
            work_queue_url=env.get("WORK_QUEUE_URL", ""),
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", ""),
            acumatica_secret_id=env.get("ACUMATICA_SECRET_ARN", ""),
            jira_secret_id=env.get("JIRA_SECRET_ARN", ""),
            webhook_secret_id=env.get("WEBHOOK_SECRET_ARN", ""),
            parameter_tables_id=env.get("PARAMETER_TABLES_ARN", ""),
            poller_function_name=env.get("POLLER_FUNCTION_NAME", ""),
            triage=TriageRules(escalation_user=(env.get("ESCALATION_USER") or "").strip() or None,
                               escalation_label=(env.get("ESCALATION_LABEL") or "escalated").strip() or "escalated"),
        )
        return apply_tables(settings, tables_from_parameters(env))

    @property
    def external_id_field_number(self) -> str:
        """``10050`` for ``customfield_10050``: JQL addresses the field as ``cf[10050]``."""
        return self.jira_external_id_field.removeprefix("customfield_")
