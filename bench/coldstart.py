"""coldstart: what a Lambda cold start costs, measured beside ``import boto3`` and a plain-boto3 handler in the same run.

Two figures per runtime, each in fresh interpreters, as the median of per-round ratios to its yardstick:

- **import**: each ``functions/<name>/app.py`` imported from the function's directory with the environment Lambda
  sets (``LAMBDA_TASK_ROOT``, ``AWS_LAMBDA_FUNCTION_NAME``, region, and the template's default
  ``XRayTracing: PassThrough``, i.e. ``POWERTOOLS_TRACE_DISABLED=true``), as a ratio to ``import boto3`` timed the
  same way. A handler that defers boto3 to its first request is also shown with boto3 added ("+ boto3"), since the
  request will pay for it anyway.
- **whole cold request**: a fresh interpreter imports the WebhookFunction and answers one valid signed resolution
  delivery against moto's server holding the template's table, queue and secrets (verify, conditional put, FIFO
  send), beside ``bench/plain_boto3_webhook.py`` doing the same honest work. Moving an import into the first request
  cannot improve this figure; removing work the request does not need can.

Robustness, not flattery: this machine's cores are shared, so load comes in bursts. Every sample of a handler is
taken in the same round as a sample of its yardstick, the order within a round rotates (imports) or alternates
(requests) so that neither side always runs first, and a figure is the median of the per-round ratios, shown with
their spread (the middle half and the whole range). A cold request also reports the CPU time of its measured window,
which load from other processes hardly moves (it leaves out the waits on moto, so the connector's extra calls count
only for their client-side work). The source tree's own modules are compiled before timing, as a test run leaves
them, so its figures do not depend on what ran before.

Runtimes: the **source tree** (this virtualenv's interpreter, the connector installed in development mode, bytecode
cached by earlier runs) and the **built artifacts** (``make build-ConnectorLayer`` and ``make build-<Function>`` into a
scratch directory, run by an interpreter of the Lambda runtime's version with the layer and a bytecode-compiled
boto3 on ``PYTHONPATH``, as ``/opt/python`` and the runtime's own boto3 are on Lambda). The built layer is timed with
the ``.pyc`` the build ships and with them removed, which is what every cold start paid before the build compiled.
"""

from __future__ import annotations

import compileall
import glob
import importlib.metadata
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import Result
from connector.signatures import sign_hub

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = tuple(sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
LAMBDA_PYTHON_VERSION = "3.13"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
IMPORT_GOAL = 1.3
REQUEST_GOAL = 1.5
WEBHOOK_SECRET = "bench-coldstart-webhook-secret"
WEBHOOK_EVENT = ROOT / "events" / "jira-webhook.json"
PLAIN_HANDLER = ROOT / "bench" / "plain_boto3_webhook.py"
BEYOND_PLAIN = (
    "what the connector's cold request does beyond the plain handler's secret read, conditional put and send: one "
    "more DynamoDB write (Powertools idempotency marks the delivery in progress, then completed, so a crash or a "
    "failed send between the two never loses it, where the plain handler's one put would; the audit record of what "
    "was queued is the worker's, see docs/security.md), and the code it loads: Powertools (its "
    "package imports Logger, Metrics and Tracer together, plus the idempotency and parameters utilities) and the "
    "connector's model, configuration and webhook parsing")
"""The named causes of the gap that remains, a note of every run that times the cold request."""
CHOICES = (
    "choice: the webhook writes no audit record and uses only the low-level DynamoDB client (its idempotency "
    "records): the worker records the queued step, so the internet-facing function holds no right on a document's "
    "partition (docs/security.md), and no cold request loads boto3's DynamoDB resource (about 30 ms)",
    "choice: Powertools idempotency is kept, with its second write: its in-progress record, expiring with the "
    "Lambda's remaining time and deleted when the send fails, is what keeps a crash or a failed send between marking "
    "and sending from losing a delivery, and answers a concurrent duplicate 409 (tests/core/test_delivery_once.py); "
    "the row of the extra write prices it. Its options were checked: payload validation is off, "
    "a local cache only answers repeats in a warm container, raise_on_no_idempotency_key is on (a missing key fails "
    "instead of bypassing the guarantee)",
    "choice: the webhook handler imports neither boto3 nor the idempotency package; its wiring does, at the first "
    "request, which reads the secret and needs boto3 anyway (moving an import cannot change the cold request)",
    "choice: Logger and Metrics have no lighter import path (the aws_lambda_powertools package imports Logger, "
    "Metrics and Tracer together); with tracing off the X-Ray SDK is never loaded (connector.telemetry)",
    "choice: the worker keeps Powertools batch at module level: it has no lighter path (batch.base imports asyncio "
    "and, through data_classes, every event data class), importing it at the first request would only move its cost "
    "there, and the worker's import meets its goal",
)
"""Why the handlers are built as they are, beside the figures that justify it (a note of every full run)."""

_TIMED_IMPORT = (
    "import importlib, json, sys, time; started = time.perf_counter()\n"
    "for module in {modules!r}: importlib.import_module(module)\n"
    "elapsed = (time.perf_counter() - started) * 1000\n"
    "print(json.dumps({{'ms': elapsed, 'boto3': 'boto3' in sys.modules}}))"
)

_COLD_REQUEST = (
    "import json, sys, time\n"
    "event = json.loads(sys.stdin.read())\n"
    "class Context:\n"
    "    function_name = 'local-webhook'; function_version = '$LATEST'; memory_limit_in_mb = 512\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:local-webhook'\n"
    "    aws_request_id = 'cold-request'\n"
    "    def get_remaining_time_in_millis(self): return 10000\n"
    "started, cpu = time.perf_counter(), time.process_time()\n"
    "import {module} as function\n"
    "answer = function.handler(event, Context())\n"
    "print(json.dumps({{'ms': (time.perf_counter() - started) * 1000, 'cpu_ms': (time.process_time() - cpu) * 1000,\n"
    "                   'status': answer['statusCode']}}))\n"
)
"""A fresh interpreter answering one request: the event is read first, then the clock runs from the handler
module's import to the handler's return (Lambda's init phase plus the first invocation)."""


@dataclass(frozen=True)
class Config:
    functions: tuple[str, ...] = FUNCTIONS
    repeats: int = 9
    """Rounds of imports: each round imports boto3 and every handler (alone and followed by boto3) once."""
    requests: int = 15
    """Cold webhook requests per handler (connector and plain boto3, in pairs that alternate which goes first)."""
    xray_on: bool = True
    """Also time the imports with ``XRayTracing: Active`` (what tracing costs)."""
    built: bool = True
    """Build the layer and functions with make and time them under the runtime's Python (needs that interpreter)."""
    heaviest: bool = True


DEFAULT = Config()
QUICK = Config(repeats=3, requests=3, xray_on=False, built=False, heaviest=False)


@dataclass(frozen=True)
class Runtime:
    """An interpreter and what it finds on ``sys.path`` besides the function's directory."""

    label: str
    python: str
    path: tuple[str, ...] = ()
    function_dirs: dict[str, Path] = field(default_factory=dict)

    def directory(self, function: str) -> Path:
        return self.function_dirs.get(function, ROOT / "functions" / function)

    def environment(self, function: str, directory: Path, *, tracing: bool = False) -> dict[str, str]:
        """The parent's environment without anything that changes Powertools, AWS or bytecode behaviour, plus
        Lambda's own variables; tracing off unless asked, as the template's default ``XRayTracing`` sets it."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_", "_X_AMZN", "PYTHONPYCACHEPREFIX", "PYTHONPATH"))}
        env.update({
            "LAMBDA_TASK_ROOT": str(directory), "AWS_LAMBDA_FUNCTION_NAME": f"local-{function}",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "PYTHONDONTWRITEBYTECODE": "1",
            "POWERTOOLS_SERVICE_NAME": "acumatica-jira-connector",
            "POWERTOOLS_METRICS_NAMESPACE": "AcumaticaJiraConnector",
            "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
        })
        if self.path:
            env["PYTHONPATH"] = os.pathsep.join(self.path)
        return env


SOURCE = Runtime("source tree", sys.executable)


def _run(runtime: Runtime, program: str, directory: Path, env: dict[str, str], stdin: str | None = None) -> str:
    completed = subprocess.run([runtime.python, "-c", program], cwd=directory, env=env, input=stdin,
                               capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{runtime.label}: a fresh interpreter in {directory} failed:\n{completed.stderr[-2000:]}")
    return completed.stdout.strip().splitlines()[-1]


def _import_ms(runtime: Runtime, modules: tuple[str, ...], directory: Path, env: dict[str, str]) -> tuple[float, bool]:
    """Milliseconds to import ``modules`` in a fresh interpreter, and whether boto3 was loaded by then."""
    answer = json.loads(_run(runtime, _TIMED_IMPORT.format(modules=modules), directory, env))
    return float(answer["ms"]), bool(answer["boto3"])


def spread(ratios: list[float], of: str = "rounds") -> str:
    """The middle half and the whole range of per-round (or per-pair) ratios: how far one run's figure may be
    trusted."""
    if len(ratios) < 2:
        return f"{of}: only one"
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return f"{of}: middle half {low:.2f}-{high:.2f}x, all {min(ratios):.2f}-{max(ratios):.2f}x"


@dataclass(frozen=True)
class Imports:
    samples: dict[str, list[float]]
    """Milliseconds by plan (``boto3``, ``<function>``, ``<function> + boto3``), one per round, rounds aligned."""
    loads_boto3: frozenset[str]
    """The functions whose module import already loads boto3."""

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratios(self, name: str) -> list[float]:
        """Each round's sample of ``name`` over the same round's ``import boto3``."""
        return [ms / boto3 for ms, boto3 in zip(self.samples[name], self.samples["boto3"])]


def _rounds_of_imports(runtime: Runtime, functions: tuple[str, ...], repeats: int, tracing: bool = False) -> Imports:
    """Rounds of fresh-interpreter imports of ``boto3`` and every function (alone and followed by boto3); each round
    starts one plan later, so that no plan always follows the same one and a burst of load on this shared machine
    falls on all of them alike."""
    plans: dict[str, tuple[str, tuple[str, ...]]] = {"boto3": ("baseline", ("boto3",))}
    for function in functions:
        plans[function] = (function, ("app",))
        plans[f"{function} + boto3"] = (function, ("app", "boto3"))
    names = list(plans)
    samples: dict[str, list[float]] = {name: [] for name in plans}
    loads_boto3: set[str] = set()
    for round_number in range(max(repeats, 1)):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            function, modules = plans[name]
            directory = runtime.directory(function) if function != "baseline" else ROOT / "functions"
            env = runtime.environment(function, directory, tracing=tracing)
            ms, boto3_loaded = _import_ms(runtime, modules, directory, env)
            samples[name].append(ms)
            if boto3_loaded and modules == ("app",):
                loads_boto3.add(function)
    return Imports(samples, frozenset(loads_boto3))


# ------------------------------------------------------------------------------------------ whole cold request


@dataclass(frozen=True)
class Request:
    """One fresh interpreter answering one delivery: wall and CPU milliseconds of the measured window, the status."""

    ms: float
    cpu_ms: float
    status: int


@dataclass(frozen=True)
class ColdRequests:
    """Pairs of cold requests, connector and plain handler, aligned: ``connector[i]`` ran beside ``plain[i]``."""

    connector: tuple[Request, ...]
    plain: tuple[Request, ...]
    write_ms: float
    """Median milliseconds of one warm DynamoDB write against the same moto server (what each extra write costs)."""

    def ratios(self, cpu: bool = False) -> list[float]:
        if cpu:
            return [c.cpu_ms / p.cpu_ms for c, p in zip(self.connector, self.plain)]
        return [c.ms / p.ms for c, p in zip(self.connector, self.plain)]


def _signed_delivery(number: int) -> dict:
    """The sample HTTP API event, with a delivery id of its own (each request is new work) and re-signed."""
    event = json.loads(WEBHOOK_EVENT.read_text())
    raw = event["body"].encode("utf-8")
    event["headers"]["x-atlassian-webhook-identifier"] = f"bench-cold-{number}"
    event["headers"]["x-hub-signature"] = sign_hub(WEBHOOK_SECRET, raw)
    event["requestContext"]["requestId"] = f"bench-cold-{number}"
    return event


def _cold_request(runtime: Runtime, module: str, directory: Path, env: dict[str, str], event: dict) -> Request:
    answer = json.loads(_run(runtime, _COLD_REQUEST.format(module=module), directory, env, json.dumps(event)))
    return Request(float(answer["ms"]), float(answer["cpu_ms"]), int(answer["status"]))


def _warm_write_ms(client: Any, table_name: str, writes: int = 20) -> float:
    """One warm write of the kind the connector adds (the idempotency record's completed update), timed from this
    process against the moto server the cold requests use: the price of the extra write."""
    samples = []
    for number in range(writes):
        key = {"PK": {"S": "BENCH#writes"}, "SK": {"S": str(number)}}
        started = time.perf_counter()
        client.update_item(TableName=table_name, Key=key, UpdateExpression="SET #s = :s",
                           ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "done"}})
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def cold_webhook_requests(runtimes: list[Runtime], requests: int) -> dict[str, ColdRequests]:
    """Start moto with the template's table, queue and secrets; then, for each runtime, pairs of fresh interpreters:
    the WebhookFunction and the plain-boto3 handler answer one delivery each, the first of the pair alternating."""
    from connector_local.aws import LocalAws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server would log every request
    parameters = {"AcumaticaUrl": "https://acumatica.invalid", "JiraProjectKey": "AP",
                  "JiraExternalIdField": "customfield_10050", "DocumentTypes": "Bill"}
    results: dict[str, ColdRequests] = {}
    number = 0
    with LocalAws.start(parameters=parameters) as aws:
        secrets = aws.client("secretsmanager")
        material = json.dumps({"webhook_secret": WEBHOOK_SECRET, "client_id": "bench",
                               "client_secret": "bench-client-secret"})
        # The webhook function reads its own secret; the plain handler reads the Jira one: one read each.
        for output in ("JiraSecretArn", "WebhookSecretArn"):
            secrets.put_secret_value(SecretId=aws.outputs[output], SecretString=material)
        for runtime in runtimes:
            directory = runtime.directory("webhook")
            template_env = aws.function_environment("WebhookFunction")
            function_env = {**runtime.environment("webhook", directory), **template_env, **aws.aws_environment()}
            plain_env = {**runtime.environment("plain", PLAIN_HANDLER.parent), **aws.aws_environment(),
                         **{name: template_env[name] for name in ("TABLE_NAME", "WORK_QUEUE_URL", "JIRA_SECRET_ARN")}}
            sides = {"connector": ("app", directory, function_env),
                     "plain": (PLAIN_HANDLER.stem, PLAIN_HANDLER.parent, plain_env)}
            measured: dict[str, list[Request]] = {side: [] for side in sides}
            for pair in range(max(requests, 1)):
                for side in (("connector", "plain") if pair % 2 == 0 else ("plain", "connector")):
                    module, where, env = sides[side]
                    measured[side].append(_cold_request(runtime, module, where, env, _signed_delivery(number)))
                    number += 1
            results[runtime.label] = ColdRequests(tuple(measured["connector"]), tuple(measured["plain"]),
                                                  _warm_write_ms(aws.client("dynamodb"), template_env["TABLE_NAME"]))
    return results


# ------------------------------------------------------------------------------------------ built artifacts


def lambda_python() -> str | None:
    """An interpreter of the Lambda runtime's version: on PATH, else under pyenv (as the Makefile looks for it)."""
    candidates = [f"python{LAMBDA_PYTHON_VERSION}",
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{LAMBDA_PYTHON_VERSION}*/bin/"
                                                       f"python{LAMBDA_PYTHON_VERSION}")))]
    for candidate in candidates:
        path = shutil.which(candidate)
        if not path:
            continue
        probe = subprocess.run([path, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == LAMBDA_PYTHON_VERSION:
            return path
    return None


def _make(target: str, directory: Path, artifacts: Path, python: str) -> None:
    artifacts.mkdir(parents=True)  # sam build creates each ARTIFACTS_DIR before running make
    completed = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), target, f"ARTIFACTS_DIR={artifacts}",
                                f"LAMBDA_PYTHON={python}"], cwd=directory, capture_output=True, text=True,
                               timeout=900, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"make {target} failed:\n{completed.stderr[-2000:]}")


def build_runtime(scratch: Path, python: str, *, bytecode: bool = True) -> Runtime:
    """``sam build``'s make targets into ``scratch``, plus the runtime's own boto3 (compiled, as Lambda ships it)."""
    layer = scratch / "layer"
    if not layer.exists():
        _make("build-ConnectorLayer", ROOT / "shared", layer, python)
        for function in FUNCTIONS:
            _make(f"build-{function.capitalize()}Function", ROOT / "functions" / function,
                  scratch / "functions" / function, python)
        runtime_site = scratch / "runtime"
        version = importlib.metadata.version("boto3")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-compile", "--target", str(runtime_site), "--only-binary=:all:", "--implementation",
                        "cp", "--python-version", LAMBDA_PYTHON_VERSION, "--platform", LAMBDA_PLATFORM,
                        f"boto3=={version}"], check=True, capture_output=True, timeout=900)
        subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(runtime_site)], check=True,
                       capture_output=True, timeout=900)
    functions = {function: scratch / "functions" / function for function in FUNCTIONS}
    if bytecode:
        return Runtime(f"built layer, python{LAMBDA_PYTHON_VERSION}", python,
                       (str(layer / "python"), str(scratch / "runtime")), functions)
    bare = scratch / "without-bytecode"
    if not bare.exists():
        shutil.copytree(layer / "python", bare / "layer", ignore=shutil.ignore_patterns("__pycache__"))
        for function, directory in functions.items():
            shutil.copytree(directory, bare / "functions" / function, ignore=shutil.ignore_patterns("__pycache__"))
    return Runtime(f"built layer without .pyc, python{LAMBDA_PYTHON_VERSION}", python,
                   (str(bare / "layer"), str(scratch / "runtime")),
                   {function: bare / "functions" / function for function in FUNCTIONS})


def count_bytecode(directory: Path) -> tuple[int, int]:
    """(modules, of which with a ``.pyc`` for the runtime's Python) in a built layer."""
    tag = f"cpython-{LAMBDA_PYTHON_VERSION.replace('.', '')}"
    sources = [p for p in directory.rglob("*.py") if "__pycache__" not in p.parts]
    compiled = sum(1 for p in sources if (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists())
    return len(sources), compiled


# ------------------------------------------------------------------------------------------ reporting


def heaviest_imports(directory: Path, env: dict[str, str], count: int = 4) -> list[tuple[str, float]]:
    """The modules ``app.py`` imports directly that cost the most (cumulative ms, ``-X importtime``)."""
    completed = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=directory, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    children: list[tuple[str, float]] = []
    for line in completed.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # one separating space, then two per nesting level
        if depth == 0:
            if name.strip() == "app":  # its direct imports were printed just before it
                return sorted(children, key=lambda item: item[1], reverse=True)[:count]
            children = []
        elif depth == 1:
            children.append((name.strip(), int(parts[1]) / 1000))
    return []


def _report_imports(result: Result, runtime: Runtime, imports: Imports, functions: tuple[str, ...],
                    suffix: str = "", goal: bool = True) -> None:
    result.add(f"[{runtime.label}{suffix}] import boto3", imports.median("boto3"), "ms",
               "the yardstick, same interpreter and run (median)")
    for function in functions:
        ratios = imports.ratios(function)
        ratio = statistics.median(ratios)
        with_boto3 = statistics.median(imports.ratios(f"{function} + boto3"))
        note = (f"{imports.median(function):.0f} ms, boto3 included" if function in imports.loads_boto3 else
                f"{imports.median(function):.0f} ms; boto3 loads at the first request: with it {with_boto3:.2f}x")
        note += f"; {spread(ratios)}"
        result.add(f"[{runtime.label}{suffix}] {function} import / import boto3", round(ratio, 2), "x", note,
                   goal=f"<= {IMPORT_GOAL}x" if goal else "", met=ratio <= IMPORT_GOAL if goal else None)
        if goal and ratio > IMPORT_GOAL:
            loads = "boto3 and " if function in imports.loads_boto3 else ""
            result.notes.append(
                f"[{runtime.label}] {function} import missed its goal ({ratio:.2f}x; {spread(ratios)}): it loads "
                f"{loads}everything its heaviest imports (below) name on top of the yardstick")


def _report_requests(result: Result, label: str, requests: ColdRequests) -> None:
    ratios = requests.ratios()
    ratio = statistics.median(ratios)
    connector_ms = statistics.median(r.ms for r in requests.connector)
    plain_ms = statistics.median(r.ms for r in requests.plain)
    cpu = statistics.median(requests.ratios(cpu=True))
    result.add(f"[{label}] cold webhook request / plain boto3", round(ratio, 2), "x",
               f"{connector_ms:.0f} ms vs {plain_ms:.0f} ms (medians of {len(ratios)}); {spread(ratios, 'pairs')}; "
               f"CPU of the same windows {cpu:.2f}x", goal=f"<= {REQUEST_GOAL}x", met=ratio <= REQUEST_GOAL)
    result.add(f"[{label}] the write beyond the plain handler / plain boto3",
               round(requests.write_ms / plain_ms, 2), "x",
               f"{requests.write_ms:.1f} ms, the median warm DynamoDB write against the same moto server (the "
               "idempotency record's completed update), over the plain handler's request")
    if ratio > REQUEST_GOAL:
        result.notes.append(
            f"[{label}] the cold webhook request missed its goal ({ratio:.2f}x; {spread(ratios, 'pairs')}; CPU "
            f"{cpu:.2f}x): its causes are the extra write and the code named in the note on what it does beyond "
            "the plain handler")
    statuses = {r.status for r in requests.connector + requests.plain}
    result.check(f"[{label}] every cold request was accepted (202)", statuses == {202},
                 f"statuses seen: {sorted(statuses)}")


def run(config: Config) -> Result:
    result = Result("coldstart", f"fresh interpreters: {config.repeats} rounds of imports and {config.requests} pairs "
                                 "of whole cold webhook requests, each figure the median of its per-round ratios to "
                                 "the yardstick measured in the same round")
    for package in ("shared", "functions", "bench"):  # the source tree's bytecode, as a test run leaves it
        compileall.compile_dir(ROOT / package, quiet=1)
    runtimes = [SOURCE]
    with tempfile.TemporaryDirectory(prefix="bench-build-") as scratch:
        python = lambda_python() if config.built else None
        if python:
            built = build_runtime(Path(scratch), python)
            runtimes += [built, build_runtime(Path(scratch), python, bytecode=False)]
            modules, compiled = count_bytecode(Path(scratch) / "layer" / "python")
            result.add("built layer modules with runtime bytecode", f"{compiled}/{modules}", "",
                       f"cpython-{LAMBDA_PYTHON_VERSION.replace('.', '')}.pyc, unchecked-hash, compiled by {python}",
                       goal="all", met=compiled == modules)
        elif config.built:
            result.notes.append(f"no python{LAMBDA_PYTHON_VERSION} on this machine: the built layer was not timed, "
                                "and make build-ConnectorLayer ships it without bytecode")
        for runtime in runtimes:
            _report_imports(result, runtime, _rounds_of_imports(runtime, config.functions, config.repeats),
                            config.functions, goal="without" not in runtime.label)
        if config.xray_on:
            _report_imports(result, SOURCE, _rounds_of_imports(SOURCE, config.functions, config.repeats, tracing=True),
                            config.functions, suffix=", XRayTracing Active", goal=False)
        requests = cold_webhook_requests([r for r in runtimes if "without" not in r.label], config.requests)
        for label, measured in requests.items():
            _report_requests(result, label, measured)
        result.notes.append(f"cold webhook request, {BEYOND_PLAIN}")
        if config.heaviest:
            result.notes.extend(CHOICES)
    if config.heaviest:
        for function in config.functions:
            directory = SOURCE.directory(function)
            heavy = heaviest_imports(directory, SOURCE.environment(function, directory))
            result.notes.append(f"{function}: heaviest imports " + ", ".join(f"{n} {ms:.0f} ms" for n, ms in heavy))
    result.check("every handler imports cleanly in a fresh interpreter", True, ", ".join(config.functions))
    return result
