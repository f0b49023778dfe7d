"""coldstart: how long each ``functions/<name>/app.py`` takes to import in a fresh interpreter (the init phase).

Each import runs in a new subprocess, from the function's directory as Lambda runs it, with the environment Lambda
sets (``LAMBDA_TASK_ROOT``, ``AWS_LAMBDA_FUNCTION_NAME``, region) so Powertools behaves as deployed: the template
sets ``Tracing: Active``, so the Tracer is enabled and patches boto3 and requests at import. The "X-Ray off" figure
shows what that patching costs. A baseline calibrates this machine against docs/TOOLING.md, which measured
``import boto3`` at about 0.18 s and Powertools + requests + boto3 (clients created at import) at about 0.41 s.

The figures use this machine's bytecode caches. The layer Lambda gets has none: ``make build-ConnectorLayer`` deletes
every ``__pycache__`` (the ones pip writes are for the build interpreter, not the runtime's), and ``/opt`` is
read-only, so every cold start compiles the layer's modules from source. The "no layer bytecode" figure reproduces
that: a private bytecode cache (``PYTHONPYCACHEPREFIX``) holding everything except the layer's packages.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import Result
from connector.signatures import sign_hub

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = tuple(sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
TOOLING_FIGURE_MS = 410.0
TOOLING_BOTO3_MS = 180.0
RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six"})
"""Top-level packages the Lambda Python runtime provides (with bytecode); everything else the handlers import from
site-packages, and the connector itself, comes from the layer."""

_COLD_REQUEST = (
    "import json, sys, time\n"
    "event = json.loads(sys.stdin.read())\n"
    "class Context:\n"
    "    function_name = 'local-webhook'; function_version = '$LATEST'; memory_limit_in_mb = 512\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:local-webhook'\n"
    "    aws_request_id = 'cold-request'\n"
    "    def get_remaining_time_in_millis(self): return 10000\n"
    "started = time.perf_counter()\n"
    "import {module} as function\n"
    "answer = function.handler(event, Context())\n"
    "print(json.dumps({{'ms': (time.perf_counter() - started) * 1000, 'status': answer['statusCode']}}))\n"
)
"""A fresh interpreter answering one request: the event is read first, then the clock runs from the handler
module's import to the handler's return (Lambda's init phase plus the first invocation)."""

_TIMED_IMPORT = (
    "import time, importlib; started = time.perf_counter(); importlib.import_module({module!r}); "
    "print((time.perf_counter() - started) * 1000)"
)


@dataclass(frozen=True)
class Config:
    functions: tuple[str, ...] = FUNCTIONS
    repeats: int = 5
    xray_off: bool = True
    without_layer_bytecode: bool = True
    heaviest: bool = True


DEFAULT = Config()
QUICK = Config(repeats=3, xray_off=False, without_layer_bytecode=False, heaviest=False)


def _environment(function: str, directory: Path, *, tracing: bool = True) -> dict[str, str]:
    """The parent's environment without anything that changes Powertools, AWS or bytecode behaviour, plus
    Lambda's own variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_", "_X_AMZN", "PYTHONPYCACHEPREFIX"))}
    env.update({
        "LAMBDA_TASK_ROOT": str(directory), "AWS_LAMBDA_FUNCTION_NAME": f"local-{function}",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "PYTHONDONTWRITEBYTECODE": "1",
        "POWERTOOLS_SERVICE_NAME": "acumatica-jira-connector",
        "POWERTOOLS_METRICS_NAMESPACE": "AcumaticaJiraConnector",
    })
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def _import_ms(module: str, directory: Path, env: dict[str, str]) -> float:
    completed = subprocess.run([sys.executable, "-c", _TIMED_IMPORT.format(module=module)], cwd=directory, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"importing {module} in {directory} failed:\n{completed.stderr[-2000:]}")
    return float(completed.stdout.strip().splitlines()[-1])


def _median_ms(module: str, directory: Path, env: dict[str, str], repeats: int) -> tuple[float, float, float]:
    samples = [_import_ms(module, directory, env) for _ in range(max(repeats, 1))]
    return statistics.median(samples), min(samples), max(samples)


def _without_layer_bytecode_ms(directory: Path, env: dict[str, str], repeats: int) -> float:
    """Median import time when the layer's modules must be compiled from source, as on Lambda."""
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
        cached = {**env, "PYTHONPYCACHEPREFIX": prefix}
        writing = {k: v for k, v in cached.items() if k != "PYTHONDONTWRITEBYTECODE"}
        _import_ms("app", directory, writing)  # fills the private cache with every module app.py imports
        _strip_layer_bytecode(Path(prefix))
        return _median_ms("app", directory, cached, repeats)[0]


def _strip_layer_bytecode(prefix: Path) -> None:
    """Delete the cached bytecode of the connector and of every site-packages module the runtime does not provide.

    ``PYTHONPYCACHEPREFIX`` mirrors each source directory under the prefix, so a package's bytecode lives under
    ``<prefix>/<site-packages>/<package>/`` and a single-module distribution's at ``<prefix>/<site-packages>/``.
    """
    for pyc in (prefix / str(ROOT / "shared").lstrip(os.sep)).rglob("*.pyc"):
        pyc.unlink()
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        mirror = prefix / str(Path(site).resolve()).lstrip(os.sep)
        for pyc in mirror.rglob("*.pyc"):
            parts = pyc.relative_to(mirror).parts
            top = parts[0] if len(parts) > 1 else pyc.name.split(".")[0]
            if top not in RUNTIME_PACKAGES:
                pyc.unlink()


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


def run(config: Config) -> Result:
    result = Result("coldstart", f"import time of functions/<name>/app.py in a fresh interpreter, median of "
                                 f"{config.repeats} (min-max)")
    scratch = ROOT / "functions"
    boto3_ms, low, high = _median_ms("boto3", scratch, _environment("baseline", scratch), config.repeats)
    result.add("baseline: import boto3", boto3_ms, "ms", f"{low:.0f}-{high:.0f}; TOOLING.md: ~{TOOLING_BOTO3_MS:.0f}")
    for function in config.functions:
        directory = ROOT / "functions" / function
        deployed = _environment(function, directory)
        median, low, high = _median_ms("app", directory, deployed, config.repeats)
        result.add(f"{function}: as deployed (X-Ray on)", median, "ms",
                   f"{low:.0f}-{high:.0f}; {median / TOOLING_FIGURE_MS:.0%} of TOOLING.md's ~{TOOLING_FIGURE_MS:.0f}")
        if config.xray_off:
            off = _median_ms("app", directory, _environment(function, directory, tracing=False), config.repeats)[0]
            result.add(f"{function}: X-Ray off", off, "ms", "POWERTOOLS_TRACE_DISABLED: no patching at import")
        if config.without_layer_bytecode:
            cold = _without_layer_bytecode_ms(directory, deployed, config.repeats)
            result.add(f"{function}: no layer bytecode (as on Lambda)", cold, "ms",
                       f"+{cold - median:.0f} ms compiling the layer's modules at every cold start")
        if config.heaviest:
            heavy = heaviest_imports(directory, deployed)
            result.notes.append(f"{function}: heaviest imports " + ", ".join(f"{n} {ms:.0f} ms" for n, ms in heavy))
    result.check("every handler imports cleanly in a fresh interpreter", True, ", ".join(config.functions))
    result.notes.append(f"this machine's boto3 import is {boto3_ms / TOOLING_BOTO3_MS:.0%} of TOOLING.md's figure; "
                        "scale the handler figures by that to compare machines")
    return result


# ------------------------------------------------------------------------------------------ whole cold request

WEBHOOK_SECRET = "bench-coldstart-webhook-secret"
WEBHOOK_EVENT = ROOT / "events" / "jira-webhook.json"
PLAIN_HANDLER = ROOT / "bench" / "plain_boto3_webhook.py"


@dataclass(frozen=True)
class ColdRequests:
    """Median milliseconds of a fresh interpreter answering one valid signed resolution delivery."""

    connector_ms: float
    plain_ms: float
    connector_statuses: tuple[int, ...]
    plain_statuses: tuple[int, ...]


def _signed_delivery(number: int) -> dict:
    """The sample HTTP API event, with a delivery id of its own (each request is new work) and re-signed."""
    event = json.loads(WEBHOOK_EVENT.read_text())
    raw = event["body"].encode("utf-8")
    event["headers"]["x-atlassian-webhook-identifier"] = f"bench-cold-{number}"
    event["headers"]["x-hub-signature"] = sign_hub(WEBHOOK_SECRET, raw)
    event["requestContext"]["requestId"] = f"bench-cold-{number}"
    return event


def _cold_request(module: str, directory: Path, env: dict[str, str], event: dict) -> tuple[float, int]:
    completed = subprocess.run([sys.executable, "-c", _COLD_REQUEST.format(module=module)], cwd=directory, env=env,
                               input=json.dumps(event), capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"the cold {module} request in {directory} failed:\n{completed.stderr[-2000:]}")
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(answer["ms"]), int(answer["status"])


def cold_webhook_requests(repeats: int, directory: Path = ROOT / "functions" / "webhook") -> ColdRequests:
    """Start moto with the template's table, queue and secrets; then, alternately, the WebhookFunction and the
    plain-boto3 handler each answer one delivery in a fresh interpreter (alternating spreads machine noise evenly)."""
    from connector_local.aws import LocalAws

    parameters = {"AcumaticaUrl": "https://acumatica.invalid", "JiraProjectKey": "AP",
                  "JiraExternalIdField": "customfield_10050", "DocumentTypes": "Bill"}
    with LocalAws.start(parameters=parameters) as aws:
        secrets = aws.client("secretsmanager")
        secrets.put_secret_value(SecretId=aws.outputs["JiraSecretArn"], SecretString=json.dumps(
            {"webhook_secret": WEBHOOK_SECRET, "client_id": "bench", "client_secret": "bench-client-secret"}))
        secrets.put_secret_value(SecretId=aws.outputs["AcumaticaSecretArn"],
                                 SecretString=json.dumps({"push_secret": "bench-push-secret"}))
        function_env = {**_environment("webhook", directory), **aws.function_environment("WebhookFunction"),
                        **aws.aws_environment()}
        plain_env = {**_environment("plain", PLAIN_HANDLER.parent), **aws.aws_environment(),
                     **{name: function_env[name] for name in ("TABLE_NAME", "WORK_QUEUE_URL", "JIRA_SECRET_ARN")}}
        connector: list[tuple[float, int]] = []
        plain: list[tuple[float, int]] = []
        for number in range(max(repeats, 1)):
            connector.append(_cold_request("app", directory, function_env, _signed_delivery(2 * number)))
            plain.append(_cold_request(PLAIN_HANDLER.stem, PLAIN_HANDLER.parent, plain_env,
                                       _signed_delivery(2 * number + 1)))
    return ColdRequests(statistics.median(ms for ms, _ in connector), statistics.median(ms for ms, _ in plain),
                        tuple(status for _, status in connector), tuple(status for _, status in plain))
