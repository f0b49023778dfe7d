"""The whole connector on one machine: moto's server as AWS (resources from template.yaml), the Acumatica and Jira
sandboxes (or real URLs from the environment), the real handlers, and stand-ins for what AWS would run them with:
an HTTP API gateway, the SQS event source mapping, and the schedules.

Used by ``connector demo``, ``connector local`` and the end-to-end tests. Handlers are loaded once per process and
configured through ``os.environ`` exactly as Lambda would configure them, so one stack runs per process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

from aws_lambda_powertools.utilities import parameters as parameters_utility

from .acumatica_sandbox import AcumaticaSandbox
from .aws import STACK_NAME, LocalAws
from .container import ContainerFunction
from .gateway import HttpApiGateway
from .jira_sandbox import JiraSandbox
from .lambda_api import LambdaInvokeApi, ReservedConcurrency
from .pump import QueuePump
from .runtime import Invocable, LocalFunction, load_handler
from .ticker import ScheduleTicker, parse_rate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

JIRA_SITE = "https://acme-finance.atlassian.net"
WEBHOOK_SECRET = "local-webhook-secret"
PUSH_SECRET = "local-push-secret"
"""Sample secrets of the embedded default; a real deployment keeps its own in Secrets Manager."""
SANDBOX_CLOCK_SKEW = -timedelta(hours=3, minutes=17)
SANDBOX_RENDER_OFFSET = timedelta(hours=10)
"""The embedded Acumatica's clock runs behind the connector's and renders stamps in a tenant's time zone, so the
demo, ``connector local`` and the end-to-end suite disagree with the connector's clock the way a real tenant can."""

PARAMETER_ENV = {
    "AcumaticaUrl": "ACUMATICA_URL",
    "AcumaticaEndpointVersion": "ACUMATICA_ENDPOINT_VERSION",
    "JiraApiUrl": "JIRA_API_URL",
    "JiraAuthUrl": "JIRA_AUTH_URL",
    "JiraProjectKey": "JIRA_PROJECT_KEY",
    "JiraIssueType": "JIRA_ISSUE_TYPE",
    "JiraExternalIdField": "JIRA_EXTERNAL_ID_FIELD",
    "JiraResolvedStatuses": "JIRA_RESOLVED_STATUSES",
    "DocumentTypes": "DOCUMENT_TYPES",
    "ExceptionRules": "EXCEPTION_RULES",
    "PollSchedule": "POLL_SCHEDULE",
    "MaintenanceSchedule": "MAINTENANCE_SCHEDULE",
    "MaxReceiveCount": "MAX_RECEIVE_COUNT",
    "JiraSiteUrl": "JIRA_SITE_URL",
    "JiraClearedStatus": "JIRA_CLEARED_STATUS",
    "JiraReopenStatus": "JIRA_REOPEN_STATUS",
    "OwnerMap": "OWNER_MAP",
    "VendorOwners": "VENDOR_OWNERS",
    "RoundRobinAssignees": "ROUND_ROBIN_ASSIGNEES",
    "PriorityTable": "PRIORITY_TABLE",
    "EscalationDays": "ESCALATION_DAYS",
    "EscalationUser": "ESCALATION_USER",
    "EscalationLabel": "ESCALATION_LABEL",
    "ApproveActionName": "APPROVE_ACTION_NAME",
    "ApproveActionNames": "APPROVE_ACTION_NAMES",
    "ApprovingResolutions": "APPROVING_RESOLUTIONS",
    "DecliningStatuses": "DECLINING_STATUSES",
    "NonPersonAccounts": "NON_PERSON_ACCOUNTS",
    "DeclineAction": "DECLINE_ACTION",
    "DecisionAuthority": "DECISION_AUTHORITY",
    "ApprovalReason": "APPROVAL_REASON",
    "ResolutionSweepMinutes": "RESOLUTION_SWEEP_MINUTES",
    "PushSecretHeader": "PUSH_SECRET_HEADER",
    "PollOverlapMinutes": "POLL_OVERLAP_MINUTES",
    "InitialLookbackDays": "INITIAL_LOOKBACK_DAYS",
    "FullPassDays": "FULL_PASS_DAYS",
    "AcumaticaRequestsPerMinute": "ACUMATICA_REQUESTS_PER_MINUTE",
    "WorkFreshnessSeconds": "WORK_FRESHNESS_SECONDS",
    "WorkerMaxConcurrency": "WORKER_MAX_CONCURRENCY",
    "PollStaleMinutes": "POLL_STALE_MINUTES",
    "WorkQueueAgeAlarmSeconds": "WORK_QUEUE_AGE_ALARM_SECONDS",
    "XRayTracing": "XRAY_TRACING",
    "AlarmEmail": "ALARM_EMAIL",
    "LogLevel": "LOG_LEVEL",
}
"""Template parameter → the environment variable that overrides it locally (docs/contract.md)."""

FUNCTIONS = ("PollerFunction", "WorkerFunction", "WebhookFunction", "MaintenanceFunction")


def parameters_from_env(env: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """Template parameters: the embedded defaults, overridden by any upper-snake-case variable that is set."""
    values = dict(defaults)
    for parameter, variable in PARAMETER_ENV.items():
        if env.get(variable):
            values[parameter] = env[variable]
    return values


def _environment(logical_id: str, settings: Mapping[str, Any]) -> LocalFunction:
    """One execution environment of a function: its handler module imported afresh, as a cold start does."""
    return LocalFunction(logical_id, load_handler(settings["handler_path"], settings["handler_name"]),
                         settings["timeout"], settings["memory"])


@dataclass
class LocalStack:
    aws: LocalAws
    functions: dict[str, Invocable]
    gateway: HttpApiGateway
    pump: QueuePump
    tickers: dict[str, ScheduleTicker]
    acumatica: AcumaticaSandbox | None = None
    jira: JiraSandbox | None = None
    environment: dict[str, str] = field(default_factory=dict)
    replaced_environment: dict[str, str | None] = field(default_factory=dict)
    """What ``os.environ`` held before the stack configured the handlers; ``stop()`` puts it back."""
    lambda_api: LambdaInvokeApi | None = None
    """Lambda's Invoke API for these functions (the worker's "poll now" reaches the poller through it)."""

    @classmethod
    def start(cls, env: Mapping[str, str] | None = None, *, quiet: bool = False,
              containers: bool = False, worker_concurrency: int | None = 1) -> LocalStack:
        """Start everything. Sandboxes stand in for Acumatica/Jira unless ``ACUMATICA_URL`` / ``JIRA_API_URL`` are
        given; then the secrets must be provided as ``ACUMATICA_SECRET_JSON`` / ``JIRA_SECRET_JSON``.

        ``containers`` runs each function in processes of its own (``connector_local.container``), as Lambda does,
        so its logs, cold start and cached state are its own; otherwise the handlers run in this process, where
        tests can reach into them.

        ``worker_concurrency``: concurrent worker invocations; ``None`` runs as many as template.yaml's event source
        mapping allows (``WorkerMaxConcurrency``). The default, one, keeps the exact call counts the demo and the
        tests rely on (each further environment is another container, with its own token refresh)."""
        env = dict(os.environ if env is None else env)
        acumatica = None if env.get("ACUMATICA_URL") else AcumaticaSandbox(
            skew=SANDBOX_CLOCK_SKEW, render_offset=SANDBOX_RENDER_OFFSET).start()
        jira = None
        if not env.get("JIRA_API_URL"):
            jira = JiraSandbox(sites=[JIRA_SITE, "https://other-team.atlassian.net"],
                               webhook_secret=WEBHOOK_SECRET).start()
        defaults = {
            "LogLevel": "WARNING" if quiet else "INFO",
            "AcumaticaUrl": acumatica.url if acumatica else "",
            "JiraApiUrl": jira.url if jira else "",
            "JiraAuthUrl": jira.url if jira else "",
            "JiraSiteUrl": JIRA_SITE,
            "JiraProjectKey": jira.project_key if jira else "",
            "JiraExternalIdField": jira.external_id_field if jira else "",
        }
        # Only what the sandboxes decide; the template's own defaults stand for the rest.
        parameters = parameters_from_env(env, {name: value for name, value in defaults.items() if value})
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto and the sandboxes log every request
        aws = LocalAws.start(TEMPLATE, parameters)
        try:
            stack = cls._assemble(aws, acumatica, jira, env, quiet, containers, worker_concurrency)
        except BaseException:
            aws.stop()
            for sandbox in (acumatica, jira):
                if sandbox:
                    sandbox.stop()
            raise
        return stack

    @classmethod
    def _assemble(cls, aws: LocalAws, acumatica: AcumaticaSandbox | None, jira: JiraSandbox | None,
                  env: Mapping[str, str], quiet: bool, containers: bool, worker_concurrency: int | None
                  ) -> LocalStack:
        functions: dict[str, Invocable] = {}
        environment: dict[str, str] = {**aws.aws_environment(), "POWERTOOLS_TRACE_DISABLED": "true"}
        if quiet:
            environment["POWERTOOLS_METRICS_DISABLED"] = "true"
        function_environments = {logical_id: aws.function_environment(logical_id) for logical_id in FUNCTIONS}
        for variables in function_environments.values():
            environment.update(variables)
        gateway_routes: dict[tuple[str, str], Invocable] = {}
        gateway = HttpApiGateway(gateway_routes)
        gateway.start()
        environment["WEBHOOK_URL"] = f"{gateway.url}/jira/webhook"
        lambda_api = LambdaInvokeApi({}).start()  # its functions are added once they are loaded
        environment["AWS_ENDPOINT_URL_LAMBDA"] = lambda_api.url
        replaced = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        for logical_id in FUNCTIONS:
            settings = aws.function_settings(logical_id)
            if containers:
                own = {**function_environments[logical_id], "WEBHOOK_URL": environment["WEBHOOK_URL"]}
                functions[logical_id] = ContainerFunction(logical_id, settings["handler_path"],
                                                          settings["handler_name"], settings["timeout"],
                                                          settings["memory"], {**environment, **own})
            else:
                functions[logical_id] = _environment(logical_id, settings)
            if containers and settings["reserved_concurrency"]:  # in-process, a function runs one event at a time
                functions[logical_id] = ReservedConcurrency(functions[logical_id], settings["reserved_concurrency"])
            lambda_api.functions[f"{STACK_NAME}-{logical_id}"] = functions[logical_id]
            for event in settings["events"].values():
                if event.get("Type") == "HttpApi":
                    props = event["Properties"]
                    gateway_routes[(str(props["Method"]).upper(), str(props["Path"]))] = functions[logical_id]
        tickers = {}
        for logical_id in ("PollerFunction", "MaintenanceFunction"):
            for event_name, event in aws.function_settings(logical_id)["events"].items():
                if event.get("Type") == "ScheduleV2":
                    props = aws.resolve(event["Properties"])
                    # A function's first schedule is its own name; a further one (the resolution sweep) is named
                    # after its event: "MaintenanceFunction/ResolutionSweepTick".
                    name = f"{logical_id}/{event_name}" if logical_id in tickers else logical_id
                    tickers[name] = ScheduleTicker(functions[logical_id], props.get("Input") or "{}",
                                                   parse_rate(props["ScheduleExpression"]))
        worker_settings = aws.function_settings("WorkerFunction")
        worker = functions["WorkerFunction"]
        # A container function starts another container whenever its containers are all busy; in this process each
        # further environment is the handler imported afresh. The pump sees the worker's ChangeMessageVisibility
        # only in this process, so with containers failed messages wait out the queue's visibility timeout, as on AWS.
        pump = QueuePump(aws.client("sqs"), aws.outputs["WorkQueueUrl"], worker,
                         max_concurrency=worker_concurrency or aws.worker_max_concurrency,
                         scale_out=(lambda: worker) if containers else (
                             lambda: _environment("WorkerFunction", worker_settings)),
                         quick_retries=not containers)
        stack = cls(aws, functions, gateway, pump, tickers, acumatica, jira, environment, replaced, lambda_api)
        parameters_utility.clear_caches()  # secrets cached by an earlier stack in this process are stale
        stack._seed_secrets(env)
        return stack

    def _seed_secrets(self, env: Mapping[str, str]) -> None:
        """Credentials as `connector connect` would leave them: the sandboxes' own, or JSON given in the environment."""
        import json

        secrets = self.aws.client("secretsmanager")
        if self.acumatica:
            user, password = next(iter(self.acumatica.users.items()))
            acumatica_secret = {"client_id": self.acumatica.client_id, "client_secret": self.acumatica.client_secret,
                                "username": user, "password": password, "push_secret": PUSH_SECRET}
        else:
            acumatica_secret = json.loads(env.get("ACUMATICA_SECRET_JSON") or "{}")
        if self.jira:
            jira_secret = {"client_id": self.jira.client_id, "client_secret": self.jira.client_secret,
                           "refresh_token": self.jira.issue_refresh_token(), "webhook_secret": WEBHOOK_SECRET}
            self.jira.add_admin_webhook(self.environment["WEBHOOK_URL"], WEBHOOK_SECRET)
        else:
            jira_secret = json.loads(env.get("JIRA_SECRET_JSON") or "{}")
        secrets.put_secret_value(SecretId=self.aws.outputs["AcumaticaSecretArn"], SecretString=json.dumps(acumatica_secret))
        secrets.put_secret_value(SecretId=self.aws.outputs["JiraSecretArn"], SecretString=json.dumps(jira_secret))
        verification = {"webhook_secret": jira_secret.get("webhook_secret", ""),
                        "client_secret": jira_secret.get("client_secret", ""),
                        "push_secret": acumatica_secret.get("push_secret", ""),
                        # The site the sandbox's dynamic-webhook JWTs name (connect and maintenance copy it on AWS).
                        "cloud_id": (self.jira.cloud_ids[JIRA_SITE] if self.jira
                                     else jira_secret.get("cloud_id", ""))}
        secrets.put_secret_value(SecretId=self.aws.outputs["WebhookSecretArn"], SecretString=json.dumps(verification))

    # --- what AWS would do -------------------------------------------------------------------------------------

    def tick(self, logical_id: str = "PollerFunction") -> Any:
        """One schedule firing, as EventBridge Scheduler would deliver it (``MaintenanceFunction/ResolutionSweepTick``
        for the resolution sweep)."""
        return self.tickers[logical_id].tick()

    def drain(self):
        """Feed the worker until the work queue is empty (failed messages return, then move to the DLQ)."""
        return self.pump.drain()

    def stop(self) -> None:
        for name, value in self.replaced_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.gateway.stop()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        for function in self.functions.values():
            inner = function.function if isinstance(function, ReservedConcurrency) else function
            if isinstance(inner, ContainerFunction):
                inner.stop()
        for sandbox in (self.acumatica, self.jira):
            if sandbox:
                sandbox.stop()
        self.aws.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
