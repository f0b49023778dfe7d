"""The outside world of the backlog benchmark, in its own process: the Acumatica sandbox seeded with the backlog,
moto's server holding the template's table, queues and secrets, and a consumer draining the work queue.

A separate process keeps the measurement honest: tracemalloc in the benchmark process then sees only the poller's
memory (as a Lambda container would hold it), not 50,000 sandbox documents or moto's queue; and the servers' CPU
is not charged to the poller's figures (it is reported separately, as this process's CPU time).

Why a consumer: in production the WorkerFunction's event source mapping takes messages while the poller is still
sending. It is also needed here, because moto (5.2) makes every SendMessage cost time proportional to the messages
already on the queue (``Queue.attributes`` recounts them, several times per message), so a queue left to fill up
makes a 25,000-message pass quadratic: hours instead of minutes. ``probe_moto_sqs`` measures that cost.

moto forgets a deduplication id once its message is deleted, while SQS keeps it for five minutes. The consumer
therefore applies SQS's documented rule itself: a message repeating the deduplication id of one delivered less
than five minutes earlier is counted as dropped by SQS, not as a second delivery.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Iterator

from bench.mix import bill_fields, index_of, modified_at
from connector.model import WorkMessage

ADMIN_PASSWORD = "bench-Pa55word!"
STARTUP_TIMEOUT_SECONDS = 600.0
COLLECT_TIMEOUT_SECONDS = 300.0
SQS_DEDUPLICATION_WINDOW_MS = 5 * 60 * 1000
_STOP, _CPU, _COLLECT = "stop", "cpu", "collect"


@dataclass(frozen=True)
class MotoSqsProbe:
    """Seconds per 10-message SendMessageBatch on an empty FIFO queue and with ``queued`` messages on it."""

    queued: int
    empty_batch_seconds: float
    filled_batch_seconds: float

    def projected_seconds(self, messages: int) -> float:
        """Time to send ``messages`` into a queue nobody drains, if the cost keeps growing linearly (it does:
        it is a recount of the queue)."""
        per_message = self.empty_batch_seconds / 10
        growth = max(self.filled_batch_seconds - self.empty_batch_seconds, 0.0) / 10 / max(self.queued, 1)
        return messages * per_message + growth * messages * messages / 2


@dataclass(frozen=True)
class StackInfo:
    """What the benchmark process needs to reach the stack, as the poller's Lambda environment would give it."""

    aws_environment: dict[str, str]
    function_environment: dict[str, str]
    lambda_timeout_seconds: float
    lambda_memory_mb: int
    seed_seconds: float
    probe: MotoSqsProbe | None


@dataclass(frozen=True)
class Deliveries:
    """What the consumer received. ``per_document[i]`` counts deliveries of document ``i`` (capped at 255)."""

    per_document: bytearray
    total: int
    dropped_by_sqs_deduplication: int
    foreign: int


class _Consumer:
    """Plays the WorkerFunction's SQS event source mapping: receives (long polling) and deletes, counting.

    It consumes through moto's backend in this process, the way moto's own Lambda event source mappings do, rather
    than over HTTP: the consumer then costs moto little, and the poller's SendMessageBatch timings stay its own.
    """

    def __init__(self, queue_url: str, documents: int) -> None:
        from connector_local.aws import ACCOUNT_ID, REGION
        from moto.sqs.models import sqs_backends

        self._backend = sqs_backends[ACCOUNT_ID][REGION]
        self._queue_name = queue_url.rstrip("/").rsplit("/", 1)[1]
        self._per_document = bytearray(documents)
        self._first_sent: dict[str, int] = {}
        self._total = self._deduplicated = self._foreign = 0
        self.busy = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="work-queue-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            with self.busy:
                for message in self._backend.receive_message(self._queue_name, 10, 1, 900):
                    self._count(message.body, str(message.deduplication_id), int(message.sent_timestamp))
                    self._backend.delete_message(self._queue_name, message.receipt_handle)

    def _count(self, body: str, dedupe_id: str, sent: int) -> None:
        self._total += 1
        first = self._first_sent.get(dedupe_id)
        if first is not None and sent - first < SQS_DEDUPLICATION_WINDOW_MS:
            self._deduplicated += 1
            return
        self._first_sent[dedupe_id] = sent
        try:
            work = WorkMessage.from_json(body)
            index = index_of(work.key.number) if work.kind == "sync" else -1
        except ValueError:
            index = -1
        if 0 <= index < len(self._per_document):
            self._per_document[index] = min(self._per_document[index] + 1, 255)
        else:
            self._foreign += 1

    def deliveries(self) -> Deliveries:
        return Deliveries(bytearray(self._per_document), self._total, self._deduplicated, self._foreign)


def _drained(sqs: Any, queue_url: str, consumer: _Consumer) -> Deliveries:
    """Wait until nothing is left on the queue or in flight, then report what the consumer received."""
    deadline = time.monotonic() + COLLECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with consumer.busy:
            counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            if not any(int(value) for value in counts.values()):
                return consumer.deliveries()
        time.sleep(0.2)
    raise TimeoutError(f"the work queue was not drained within {COLLECT_TIMEOUT_SECONDS:.0f} s")


def probe_moto_sqs(sqs: Any, attributes: dict[str, str], queued: int) -> MotoSqsProbe:
    """Time SendMessageBatch into a scratch queue shaped like the work queue, empty and after ``queued`` messages."""
    url = sqs.create_queue(QueueName="bench-moto-probe.fifo", Attributes=attributes)["QueueUrl"]
    sent = 0

    def batch() -> float:
        nonlocal sent
        entries = [{"Id": str(n), "MessageBody": "{}", "MessageGroupId": f"g{sent + n}",
                    "MessageDeduplicationId": f"d{sent + n}"} for n in range(10)]
        started = time.perf_counter()
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
        sent += 10
        return time.perf_counter() - started

    try:
        empty = min(batch() for _ in range(3))
        while sent < queued:
            batch()
        filled = min(batch() for _ in range(3))
        return MotoSqsProbe(sent - 30, empty, filled)
    finally:
        sqs.delete_queue(QueueUrl=url)


def _serve(connection: Connection, documents: int, now: datetime, probe_messages: int) -> None:
    """Child process: start, seed, report ``StackInfo`` (or the failure), then answer commands until told to stop."""
    from connector_local.acumatica_sandbox import AcumaticaSandbox
    from connector_local.aws import LocalAws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server would log every request
    try:
        with AcumaticaSandbox(users={"admin": ADMIN_PASSWORD}) as sandbox:
            started = time.perf_counter()
            for index in range(documents):
                sandbox.add_document("Bill", **bill_fields(index, modified_at(index, documents, now)))
            seed_seconds = time.perf_counter() - started
            parameters = {"AcumaticaUrl": sandbox.url, "JiraProjectKey": "AP",
                          "JiraExternalIdField": "customfield_10050", "DocumentTypes": "Bill"}
            with LocalAws.start(parameters=parameters) as aws:
                sqs, queue_url = aws.client("sqs"), aws.outputs["WorkQueueUrl"]
                aws.client("secretsmanager").put_secret_value(
                    SecretId=aws.outputs["AcumaticaSecretArn"],
                    SecretString=json.dumps({"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
                                             "username": "admin", "password": ADMIN_PASSWORD}))
                probe = None
                if probe_messages:
                    shape = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
                        "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
                        "FifoThroughputLimit"])["Attributes"]
                    probe = probe_moto_sqs(sqs, shape, probe_messages)
                _keep_emptying(sandbox.requests_log)
                consumer = _Consumer(queue_url, documents)
                consumer.start()
                poller = aws.function_settings("PollerFunction")
                connection.send(StackInfo(
                    aws_environment=aws.aws_environment(),
                    function_environment=aws.function_environment("PollerFunction"),
                    lambda_timeout_seconds=float(poller["timeout"]), lambda_memory_mb=int(poller["memory"]),
                    seed_seconds=seed_seconds, probe=probe))
                try:
                    while (command := _receive(connection)) != _STOP:
                        if command == _CPU:
                            connection.send(time.process_time())
                        elif command == _COLLECT:
                            connection.send(_drained(sqs, queue_url, consumer))
                finally:
                    consumer.stop()
    except BaseException:  # noqa: BLE001 - reported to the benchmark process, which raises it there
        connection.send(RuntimeError("benchmark stack failed:\n" + traceback.format_exc()))


def _receive(connection: Connection) -> str:
    try:
        return str(connection.recv())
    except EOFError:
        return _STOP


def _keep_emptying(log: list[Any]) -> None:
    """The sandbox logs every request with its response body (for tests); over a 50,000-document pass that log
    would hold every page ever served, so a daemon thread keeps emptying it."""

    def empty() -> None:
        while True:
            time.sleep(0.5)
            del log[:]

    threading.Thread(target=empty, name="forget-requests", daemon=True).start()


class RunningStack:
    def __init__(self, info: StackInfo, connection: Connection) -> None:
        self.info = info
        self._connection = connection

    def cpu_seconds(self) -> float:
        """CPU time the stack process (sandbox, moto, consumer) has used so far."""
        return float(self._ask(_CPU))

    def deliveries(self) -> Deliveries:
        """Everything the consumer received, once the work queue is empty."""
        return self._ask(_COLLECT)

    def _ask(self, command: str) -> Any:
        self._connection.send(command)
        answer = self._connection.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer


@contextmanager
def running_stack(documents: int, now: datetime, probe_messages: int = 0) -> Iterator[RunningStack]:
    """Start the stack process with ``documents`` Bills (modified over the 20 days before ``now``); stop it after.
    With ``probe_messages``, moto's SendMessageBatch cost is first measured with that many messages queued."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(theirs, documents, now, probe_messages), name="bench-stack",
                              daemon=True)
    process.start()
    theirs.close()
    try:
        if not ours.poll(STARTUP_TIMEOUT_SECONDS):
            raise RuntimeError(f"the benchmark stack did not start within {STARTUP_TIMEOUT_SECONDS:.0f} s")
        info = ours.recv()
        if isinstance(info, BaseException):
            raise info
        yield RunningStack(info, ours)
    finally:
        try:
            ours.send(_STOP)
        except OSError:
            pass
        process.join(30)
        if process.is_alive():
            process.terminate()
            process.join(10)
        ours.close()
