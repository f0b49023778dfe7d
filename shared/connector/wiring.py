"""Adapters wired from configuration, built lazily and once per Lambda container.

Handlers create one ``Wiring`` at import time; nothing is read from the environment and no client is created until
the first invocation needs it (cold starts stay short, tests can swap the environment before the first call).

``settings`` is what the container started with. The routing and tuning tables can change under a running container
(an import, a rollback, a stack update of the table parameters): what routes is ``settings_in_effect()``, read at the
start of an invocation (``refresh_tables``) and kept for all of it, and the contexts built on it are rebuilt when it
changes (docs/tables.md).
"""

from __future__ import annotations

import os
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .config import Settings
from .errors import ConfigurationError, DeliveryInProgress
from .model import WorkMessage

if TYPE_CHECKING:  # the webhook never syncs, resolves or refreshes tokens: it does not import that code
    from .resolve import ResolveContext
    from .table_versions import InEffect, TablesInEffect
    from .sync import PollOptions, SyncContext
    from .tokens import RotatingTokens


VERIFICATION_KEYS = ("webhook_secret", "client_secret", "push_secret", "cloud_id")
"""What the webhook secret holds: Jira's webhook secret, the OAuth client secret (dynamic-webhook JWTs), the
Acumatica push secret and the connected Jira site's cloud id (a JWT naming another site is refused), copied from the
two credential secrets."""


REQUEST_METRICS = ("AcumaticaRequests", "AcumaticaThrottled", "AcumaticaTokenRefreshes", "JiraRequests",
                   "JiraThrottled", "JiraTokenRefreshes", "TablesRefused")
"""The metrics ``Wiring.request_metrics`` reports; the handlers emit them, the dashboard shows them. ``TablesRefused``
counts table versions (or parameter changes) a container refused at read time and does not route on."""


class _per_tables:
    """Like ``cached_property``, but built again when the tables in effect change (``Wiring.settings_in_effect``): the
    contexts hold the routing tables, and an import must reach them without a new container."""

    def __init__(self, build: Callable[[Wiring], Any]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__

    def __get__(self, wiring: Wiring | None, owner: type | None = None) -> Any:
        if wiring is None:
            return self
        settings = wiring.settings_in_effect()
        built = wiring._built.get(self._name)
        if built is None or built[0] is not settings:
            built = wiring._built[self._name] = (settings, self._build(wiring))
        return built[1]


class Wiring:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env
        self._refreshes_reported: dict[str, int] = {}
        self._in_effect: InEffect | None = None
        self._built: dict[str, tuple[Settings, Any]] = {}
        self._undelivered = 0

    @cached_property
    def settings(self) -> Settings:
        """The settings of the environment; what routes is ``settings_in_effect()``."""
        return Settings.from_env(self._env if self._env is not None else os.environ)

    def parameters(self) -> dict[str, str]:
        """The environment, with the table parameters from their secret where the template put them there (an
        explicit variable wins: a local run or a test overrides the stack's). Only what routes reads it: the webhook
        and maintenance never do."""
        env = dict(self._env if self._env is not None else os.environ)
        if self.settings.parameter_tables_id:
            env = {**self.parameter_tables.read(), **env}
        return env

    @cached_property
    def parameter_tables(self):
        from .table_store import ParameterTablesSecret

        return ParameterTablesSecret.from_id(self._required("parameter_tables_id", "PARAMETER_TABLES_ARN"))

    @cached_property
    def table_versions(self):
        """The imported table versions (in the connector table)."""
        from .table_store import DynamoTableVersions

        return DynamoTableVersions(self.dynamodb, self._required("table_name", "TABLE_NAME"),
                                   audit_retention_days=self.settings.audit_retention_days)

    @cached_property
    def tables(self) -> TablesInEffect:
        from .table_versions import TablesInEffect

        return TablesInEffect(self.parameters, self.table_versions if self.settings.table_name else None)

    def refresh_tables(self) -> InEffect:
        """Read the tables in effect (at most one small read a ``TABLES_CACHE_SECONDS``); the invocation routes on
        them until it ends, whatever is imported meanwhile. The first read validates the table parameters: a bad one
        fails the cold start, naming itself."""
        self._in_effect = self.tables.get()
        return self._in_effect

    def in_effect(self) -> InEffect:
        return self._in_effect or self.refresh_tables()

    def settings_in_effect(self) -> Settings:
        """``settings`` with the tables this invocation routes on."""
        return self.in_effect().settings

    @cached_property
    def store(self):
        from .store import DynamoStore

        return DynamoStore.from_name(self._required("table_name", "TABLE_NAME"),
                                     audit_retention_days=self.settings.audit_retention_days)

    @cached_property
    def queue(self):
        from .queue import SqsWorkQueue

        return SqsWorkQueue.from_url(self._required("work_queue_url", "WORK_QUEUE_URL"))

    @cached_property
    def acumatica_secret(self):
        from .secrets import SecretsManagerSecret

        return SecretsManagerSecret.from_id(self._required("acumatica_secret_id", "ACUMATICA_SECRET_ARN"))

    @cached_property
    def jira_secret(self):
        from .secrets import SecretsManagerSecret

        return SecretsManagerSecret.from_id(self._required("jira_secret_id", "JIRA_SECRET_ARN"))

    @cached_property
    def webhook_secret(self):
        """The verification material the webhook function reads (written by ``connect`` and maintenance)."""
        from .secrets import SecretsManagerSecret

        return SecretsManagerSecret.from_id(self._required("webhook_secret_id", "WEBHOOK_SECRET_ARN"))

    @cached_property
    def gates(self):
        """The container's Retry-After gates, one per system, shared by every request (``bind`` per invocation)."""
        from .http import RetryGates

        return RetryGates()

    @cached_property
    def http(self):
        from .http import make_session

        return make_session(gates=self.gates)

    @cached_property
    def acumatica_tokens(self) -> RotatingTokens:
        from .acumatica import acumatica_token_obtainer
        from .tokens import RotatingTokens

        return RotatingTokens(name="acumatica", secrets=self.acumatica_secret, lock=self.store,
                              obtain=acumatica_token_obtainer(self.settings.acumatica_url, self.http))

    @cached_property
    def jira_tokens(self) -> RotatingTokens:
        from .jira import jira_token_obtainer
        from .tokens import RotatingTokens

        return RotatingTokens(name="jira", secrets=self.jira_secret, lock=self.store,
                              obtain=jira_token_obtainer(self.settings.jira_auth_url, self.http))

    @cached_property
    def acumatica(self):
        from .acumatica import AcumaticaClient

        from .session import OperationLease

        return AcumaticaClient(base_url=self.settings.acumatica_url,
                               endpoint_version=self.settings.acumatica_endpoint_version,
                               tokens=self.acumatica_tokens, session=self.http,
                               page_size=self.settings.poll_page_size,
                               requests_per_minute=self.settings.acumatica_requests_per_minute or None,
                               operation_lease=OperationLease(self.store))

    @cached_property
    def jira(self):
        from .jira import JiraClient

        settings = self.settings
        return JiraClient(api_url=settings.jira_api_url, cloud_id=self.cloud_id, project_key=settings.jira_project_key,
                          issue_type=settings.jira_issue_type, external_id_field=settings.jira_external_id_field,
                          tokens=self.jira_tokens, session=self.http)

    @cached_property
    def cloud_id(self) -> str:
        """The Jira site's cloud id, stored in the secret at connect time (resolved and stored now if missing)."""
        stored = self.jira_secret.read().get("cloud_id")
        if stored:
            return str(stored)
        from .jira import resolve_cloud_id

        cloud_id = resolve_cloud_id(self.settings.jira_api_url, self.jira_tokens.access_token(),
                                    self.settings.jira_site_url, self.http)
        self.jira_tokens.update_secret(lambda current: {**current, "cloud_id": cloud_id})
        return cloud_id

    @_per_tables
    def sync_context(self) -> SyncContext:
        from .sync import SyncContext

        settings = self.settings_in_effect()
        return SyncContext(documents=self.acumatica, tracker=self.jira, store=self.store,
                           acumatica_url=settings.acumatica_url, owner_map=settings.owner_map,
                           labels=settings.jira_labels, cleared_status=settings.jira_cleared_status, clock=time.time,
                           reopen_status=settings.jira_reopen_status,
                           resolved_statuses=settings.jira_resolved_statuses, triage=settings.triage,
                           rules=settings.exception_rules, fresh_for_seconds=settings.work_freshness_seconds)

    @_per_tables
    def resolve_context(self) -> ResolveContext:
        from .resolve import ResolveContext

        settings = self.settings_in_effect()
        return ResolveContext(documents=self.acumatica, tracker=self.jira, store=self.store,
                              approve_action=settings.approve_action, clock=time.time,
                              resolved_statuses=settings.jira_resolved_statuses,
                              reopen_status=settings.jira_reopen_status,
                              approve_actions=settings.approve_actions,
                              rules=settings.exception_rules, policy=settings.decision_policy,
                              approval_reason=settings.approval_reason,
                              api_user=str(self.acumatica_secret.read().get("username") or ""),
                              count_undelivered=self._count_undelivered)

    def _count_undelivered(self, issue_key: str) -> None:
        self._undelivered += 1

    def take_undelivered(self) -> int:
        """Resolutions the sweep brought that no delivery had announced, since the last call (the worker's metric)."""
        counted, self._undelivered = self._undelivered, 0
        return counted

    @_per_tables
    def poll_options(self) -> PollOptions:
        from datetime import timedelta

        from .sync import PollOptions

        settings = self.settings_in_effect()
        return PollOptions(page_size=settings.poll_page_size,
                           overlap=timedelta(minutes=settings.poll_overlap_minutes),
                           initial_lookback=(timedelta(days=settings.initial_lookback_days)
                                             if settings.initial_lookback_days > 0 else None),
                           full_pass_every=(timedelta(days=settings.full_pass_days)
                                            if settings.full_pass_days > 0 else None),
                           rules=settings.exception_rules)

    @cached_property
    def work_runner(self):
        """Runs and sorts the worker's records: sync or resolve by kind, failures to the queue, the DLQ or retry."""
        import boto3

        from .resolve import resolve_document
        from .sync import sync_document
        from .worker import WorkRunner

        def perform(message: WorkMessage, attempt: int) -> str:
            if message.kind == "sync":  # only a first delivery may act on the document the poller carried
                return sync_document(message, self.sync_context, attempt=attempt)
            if message.kind == "poll":  # the poller reads them: it alone writes the watermarks
                return self.poll_trigger.request(message)
            return resolve_document(message, self.resolve_context)

        return WorkRunner(perform=perform, store=self.store, sqs=boto3.client("sqs"),
                          queue_url=self._required("work_queue_url", "WORK_QUEUE_URL"),
                          dead_letter_url=self._required("dead_letter_queue_url", "DEAD_LETTER_QUEUE_URL"))

    @cached_property
    def poll_trigger(self):
        """Asks the poller to poll now (``connector.pollnow``): an asynchronous invoke of ``POLLER_FUNCTION_NAME``."""
        import boto3

        from .pollnow import LambdaPollTrigger

        return LambdaPollTrigger(boto3.client("lambda"), self._required("poller_function_name", "POLLER_FUNCTION_NAME"))

    def request_metrics(self) -> dict[str, int]:
        """Requests to each system since the last call, the 429s among them, and token grants obtained, by metric
        name (``REQUEST_METRICS``): the dashboard's view of what the connector costs against Acumatica's license
        limit and Jira's rate limits. A system the container never called reports 0. Also the tables refused since
        the last call (``TablesRefused``)."""
        settings = self.settings
        systems = {self.gates.for_url(url).system: name
                   for url, name in ((settings.acumatica_url, "Acumatica"), (settings.jira_api_url, "Jira"),
                                     (settings.jira_auth_url, "Jira")) if url}
        counts = dict.fromkeys(REQUEST_METRICS, 0)
        for (system, what), n in self.gates.take_counts().items():
            if system in systems:
                counts[f"{systems[system]}{'Requests' if what == 'requests' else 'Throttled'}"] += n
        for name, attribute in (("Acumatica", "acumatica_tokens"), ("Jira", "jira_tokens")):
            tokens = self.__dict__.get(attribute)  # only a container that built the tokens has refreshed any
            if tokens is not None:
                counts[f"{name}TokenRefreshes"] = tokens.refreshes - self._refreshes_reported.get(name, 0)
                self._refreshes_reported[name] = tokens.refreshes
        tables = self.__dict__.get("tables")
        if tables is not None:
            counts["TablesRefused"] = tables.refusals - self._refreshes_reported.get("tables", 0)
            self._refreshes_reported["tables"] = tables.refusals
        return counts

    def begin_invocation(self, seconds_left) -> None:
        """Bound this invocation's waits (Retry-After gates) and records by the Lambda's remaining time, and read the
        tables it routes on."""
        self.gates.bind(seconds_left)
        self.work_runner.begin(seconds_left)
        self.refresh_tables()

    def dead_letter_count(self) -> int:
        """Messages in the DLQ, visible or in flight (the daily health check reports them)."""
        import boto3

        from .redrive import queue_depths

        url = self._required("dead_letter_queue_url", "DEAD_LETTER_QUEUE_URL")
        depth = queue_depths(boto3.client("sqs"), [url])[url]
        return depth["ApproximateNumberOfMessages"] + depth["ApproximateNumberOfMessagesNotVisible"]

    @cached_property
    def delivery_idempotency(self):
        """Powertools idempotency for inbound deliveries: Jira retries for 30 minutes, FIFO dedupes for five.

        A delivery without a key is an error, not a silent pass through the guarantee (the key is never empty:
        ``webhooks.delivery_id`` falls back to a digest of the body)."""
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

        return IdempotencyConfig(event_key_jmespath="delivery_id", expires_after_seconds=2 * 86400,
                                 raise_on_no_idempotency_key=True)

    @cached_property
    def dynamodb(self):
        """The low-level DynamoDB client of the webhook's idempotency records.

        A client of boto3's default session, which the queue uses too: left to itself Powertools builds a session of
        its own, and every new session reads botocore's endpoint and service data from disk again."""
        import boto3

        return boto3.client("dynamodb")

    @cached_property
    def _enqueue_once(self):
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function

        persistence = DynamoDBPersistenceLayer(
            table_name=self._required("table_name", "TABLE_NAME"), key_attr="PK", sort_key_attr="SK",
            static_pk_value="IDEMPOTENCY#deliveries", expiry_attr="expires_at", boto3_client=self.dynamodb)

        @idempotent_function(data_keyword_argument="delivery", persistence_store=persistence,
                             config=self.delivery_idempotency)
        def enqueue(delivery: dict) -> dict:
            messages = [WorkMessage.from_json(body) for body in delivery["messages"]]
            self.queue.send(messages)  # the worker records "queued": this function writes no document's items
            return {"queued": len(messages)}

        return enqueue

    def enqueue_delivery(self, delivery_id: str, messages: Sequence[WorkMessage]) -> dict:
        """Queue a delivery's messages once per delivery key; a repeat returns the first result.

        Raises ``DeliveryInProgress`` while another invocation is queueing the same delivery. The library's own
        exception is imported here, not by the handler: its module loads the idempotency package and boto3, which a
        request that reaches this point has loaded anyway, and the handler's import then stays free of both."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        try:
            return self._enqueue_once(delivery={"delivery_id": delivery_id,
                                                "messages": [m.to_json() for m in messages]})
        except IdempotencyAlreadyInProgressError:
            raise DeliveryInProgress(f"delivery {delivery_id} is being queued by another invocation") from None

    def _required(self, attribute: str, variable: str) -> str:
        value = getattr(self.settings, attribute)
        if not value:
            raise ConfigurationError(f"{variable} is not set")
        return str(value)

    def webhook_secrets(self) -> dict[str, Any]:
        """Secret material for verifying deliveries, cached for five minutes (Powertools parameters).

        Read from the webhook function's own secret only: the internet-facing function must not be able to read the
        Acumatica credentials or the Jira refresh token (its IAM policy grants neither), and a cold request pays for
        one Secrets Manager call."""
        material = self._cached_secrets.get(self._required("webhook_secret_id", "WEBHOOK_SECRET_ARN"),
                                            transform="json", max_age=300)
        return {name: material.get(name) or "" for name in VERIFICATION_KEYS}

    @cached_property
    def _cached_secrets(self):
        """Powertools' caching secrets provider over a client of boto3's default session (see ``dynamodb``)."""
        import boto3
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        return SecretsProvider(boto3_client=boto3.client("secretsmanager"))
