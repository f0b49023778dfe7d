"""The dashboard and the alarms watch metrics the code really emits: a renamed metric must fail here, not go dark.

The emitted names are read from the code itself (the handlers' ``add_metric`` calls, the outcomes the core returns,
the statuses the webhook rejects with), never from a list kept beside the dashboard.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from connector.jira import RECONNECT_METRIC
from connector.wiring import REQUEST_METRICS
from connector.worker import DEAD_LETTERED, DEFERRED, Result

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "AcumaticaJiraConnector"
SERVICE = "acumatica-jira-connector"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    body, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return body


def _outcome_metric(kind: str, outcome: str) -> str:
    """The name the worker emits for an outcome (``connector.worker.Result.metric``)."""
    return Result(kind, outcome).metric


def _returned_outcomes(path: Path) -> set[str]:
    """String constants a core function returns or assigns to ``outcome``: the worker's outcome names."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Return):
            value = node.value
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "outcome" for t in node.targets):
            value = node.value
        for constant in ast.walk(value) if value is not None else ():
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str) \
                    and re.fullmatch(r"[a-z]+(-[a-z]+)*", constant.value):
                found.add(constant.value)
    return found


def emitted_metric_names() -> set[str]:
    names: set[str] = {RECONNECT_METRIC}
    if all("wiring.request_metrics()" in (ROOT / "functions" / f / "app.py").read_text()
           for f in ("poller", "worker", "maintenance")):
        names |= set(REQUEST_METRICS)
    for app in (ROOT / "functions").glob("*/app.py"):
        names |= set(re.findall(r'add_metric\(name="(\w+)"', app.read_text()))
    webhook = (ROOT / "functions/webhook/app.py").read_text() + (ROOT / "shared/connector/inbound.py").read_text()
    for kind in re.findall(r'_queued\(\s*(?:wiring,\s*)?"(\w+)"', webhook):
        names |= {f"{kind}Queued", f"{kind}Ignored"}
    statuses = set()
    for module in (ROOT / "shared/connector").glob("*.py"):
        statuses |= set(re.findall(r"Rejected\(\s*(\d{3})", module.read_text()))
    names |= {f"Rejected{status}" for status in statuses}
    for kind, module in (("sync", "sync.py"), ("resolve", "resolve.py"), ("resolve", "effects.py")):
        outcomes = _returned_outcomes(ROOT / "shared/connector" / module) | {DEAD_LETTERED, DEFERRED}
        names |= {_outcome_metric(kind, outcome) for outcome in outcomes}
    return names


def _dashboard_metrics(template: dict[str, Any]) -> list[list[str]]:
    body = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    return [metric for widget in widgets for metric in widget["properties"]["metrics"]]


def test_every_connector_metric_on_the_dashboard_is_emitted_by_the_code(template: dict[str, Any]) -> None:
    emitted = emitted_metric_names()
    shown = [m for m in _dashboard_metrics(template) if m[0] == NAMESPACE]
    assert shown
    missing = sorted({m[1] for m in shown} - emitted)
    assert missing == [], f"dashboard shows metrics nothing emits: {missing}"
    assert all(m[2:4] == ["service", SERVICE] for m in shown), "Powertools adds the service dimension to every metric"


def test_the_dashboard_covers_what_the_issue_asks_for(template: dict[str, Any]) -> None:
    names = {m[1] for m in _dashboard_metrics(template)}
    for wanted in ("DocumentsSeen", "DocumentsQueued", "SyncCreated", "SyncUpdated", "SyncCleared", "ResolveDone",
                   "ResolveNoAction", "ReconnectNeeded", "ApproximateAgeOfOldestMessage", "Duration", "Errors",
                   "AcumaticaRequests", "AcumaticaThrottled", "JiraRequests", "JiraThrottled", "JiraTokenRefreshes"):
        assert wanted in names, wanted


def test_alarms_on_connector_metrics_watch_emitted_metrics_with_the_service_dimension(template: dict[str, Any]) -> None:
    emitted = emitted_metric_names()
    alarms = {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    for name, alarm in alarms.items():
        assert alarm.get("OKActions"), f"{name} never says when it is OK again"
        if alarm["Namespace"] == NAMESPACE:
            assert alarm["MetricName"] in emitted, name
            assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}], name


@pytest.mark.parametrize("function", ["MaintenanceFunction", "WebhookFunction", "WorkerFunction", "PollerFunction"])
def test_every_function_has_an_error_alarm(template: dict[str, Any], function: str) -> None:
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(a["Namespace"] == "AWS/Lambda" and a["MetricName"] == "Errors"
               and a["Dimensions"][0]["Value"] == {"Ref": function} for a in alarms)


def test_the_stale_poll_alarm_fires_when_the_poller_stops_running_at_all(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["PollStaleAlarm"]["Properties"]
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == {"Ref": "PollStaleMinutes"}
    assert alarm["Period"] == 60
    # The default must leave room for several ticks of the default schedule (rate(5 minutes)).
    assert int(template["Parameters"]["PollStaleMinutes"]["Default"]) >= 3 * 5


@pytest.mark.parametrize("expression, accepted", [
    ("rate(5 minutes)", True), ("rate(1 minute)", True), ("rate(2 hours)", True), ("rate(1 day)", True),
    ("cron(0/5 * * * ? *)", True), ("rate(1 minutes)", False), ("rate(5 minute)", False), ("rate(0 minutes)", False),
    ("rate(five minutes)", False), ("cron(* * * *)", False), ("every 5 minutes", False), ("rate(5 minutes) x", False),
])
def test_schedule_patterns_accept_only_what_eventbridge_accepts(template: dict[str, Any], expression: str,
                                                                accepted: bool) -> None:
    for parameter in ("PollSchedule", "MaintenanceSchedule"):
        pattern = template["Parameters"][parameter]["AllowedPattern"]
        assert bool(re.fullmatch(pattern, expression)) is accepted, (parameter, expression)
