"""X-Ray tracing follows the template's XRayTracing parameter, and with it off the X-Ray SDK is never loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector_local.aws import LocalAws

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = {"AcumaticaUrl": "http://127.0.0.1:8001", "JiraProjectKey": "AP",
              "JiraExternalIdField": "customfield_10050"}
LOADED_MODULES = "import json, sys, app; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == {0!r})))"


def _lambda_environment(directory: Path, trace_disabled: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_"))}
    env.update({"LAMBDA_TASK_ROOT": str(directory), "AWS_LAMBDA_FUNCTION_NAME": "local-test",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_TRACE_DISABLED": trace_disabled})
    return env


def _loaded(function: str, package: str, trace_disabled: str) -> list[str]:
    directory = ROOT / "functions" / function
    completed = subprocess.run([sys.executable, "-c", LOADED_MODULES.format(package)], cwd=directory,
                               env=_lambda_environment(directory, trace_disabled), capture_output=True, text=True,
                               timeout=120, check=True)
    return json.loads(completed.stdout)


@pytest.mark.parametrize("function", ["poller", "worker", "webhook", "maintenance"])
def test_with_tracing_off_no_handler_imports_the_xray_sdk(function: str) -> None:
    assert _loaded(function, "aws_xray_sdk", trace_disabled="true") == []


def test_with_tracing_on_the_handler_is_traced_by_powertools() -> None:
    loaded = _loaded("worker", "aws_xray_sdk", trace_disabled="false")

    assert "aws_xray_sdk.core" in loaded


def test_the_webhook_loads_no_jwt_library_until_a_jwt_arrives() -> None:
    assert _loaded("webhook", "jwt", trace_disabled="true") == []


@pytest.mark.parametrize(("tracing", "disabled"), [(None, "true"), ("Active", "false"), ("PassThrough", "true")])
def test_the_template_disables_powertools_tracing_unless_xray_tracing_is_active(tracing: str | None,
                                                                                 disabled: str) -> None:
    parameters = PARAMETERS if tracing is None else {**PARAMETERS, "XRayTracing": tracing}
    with LocalAws.start(ROOT / "template.yaml", parameters) as aws:
        for function in ("PollerFunction", "WorkerFunction", "WebhookFunction", "MaintenanceFunction"):
            assert aws.function_environment(function)["POWERTOOLS_TRACE_DISABLED"] == disabled
