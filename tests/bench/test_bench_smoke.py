"""Each benchmark at a tiny size, so the suite cannot rot: it runs, checks its own output, and reports figures.

Speed is never asserted here (that is what the printed figures are for), only that the benchmarks still measure
what they claim to measure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import Result, backlog, classify, coldstart, flow, routing, webhook
from bench.__main__ import main


def figure(result: Result, name: str) -> float | int | str:
    return next(f.value for f in result.figures if f.name == name)


def test_backlog_pass_spans_several_runs_and_queues_each_exception_once() -> None:
    # A budget just over the poller's 20 s safety margin ends every run after its first page.
    config = backlog.Config(sizes=(200,), budget_seconds=20.5, page_size=150, probe_moto_messages=20)

    result = backlog.run(config)

    assert result.passed, [c for c in result.checks if not c.passed]
    assert {c.name for c in result.checks} == {"[200] every exception document queued exactly once",
                                               "[200] no document skipped",
                                               "[200] the pass completed and set the watermark"}
    assert figure(result, "[200] runs needed") >= 2
    assert figure(result, "[200] messages delivered to the consumer") == 100
    assert figure(result, "[200] peak traced memory (worst run)") > 0
    assert figure(result, "moto SendMessageBatch, empty FIFO queue") > 0


def test_classify_reports_rates_and_checks_the_mix() -> None:
    result = classify.run(classify.Config(documents=200, repeats=1))

    assert result.passed
    assert figure(result, "classify + snapshot + fingerprint") > 0


def test_webhook_accepts_a_signed_20kb_delivery_and_refuses_a_forged_one() -> None:
    result = webhook.run(webhook.Config(deliveries=20, repeats=1))

    assert result.passed
    assert len(webhook.issue_updated_body(20_000)) >= 20_000
    assert figure(result, "rejected (bad signature -> 401)") > 0


def test_coldstart_times_imports_and_a_whole_cold_webhook_request_beside_their_yardsticks() -> None:
    config = coldstart.Config(functions=("poller", "webhook"), repeats=1, requests=1, xray_on=False, built=False,
                              heaviest=True)

    result = coldstart.run(config)

    assert result.passed, [c for c in result.checks if not c.passed]
    assert figure(result, "[source tree] import boto3") > 0
    assert figure(result, "[source tree] webhook import / import boto3") > 0
    assert figure(result, "[source tree] cold webhook request / plain boto3") > 0
    assert any(note.startswith("poller: heaviest imports ") for note in result.notes)


@pytest.mark.skipif(coldstart.lambda_python() is None, reason="no interpreter of the Lambda runtime's version")
def test_the_built_layer_ships_bytecode_for_the_runtime_and_its_handlers_import(tmp_path: Path) -> None:
    runtime = coldstart.build_runtime(tmp_path, coldstart.lambda_python())

    modules, compiled = coldstart.count_bytecode(tmp_path / "layer" / "python")
    assert modules > 100 and compiled == modules
    directory = runtime.directory("webhook")
    ms, boto3_loaded = coldstart._import_ms(runtime, ("app",), directory, runtime.environment("webhook", directory))
    assert ms > 0 and not boto3_loaded  # the webhook leaves boto3 to its first request, which reads its secret


def test_flow_counts_calls_per_document_through_the_real_handlers() -> None:
    result = flow.run(flow.Config(documents=60, resolutions=3, naive_documents=10))

    assert result.passed, [c for c in result.checks if not c.passed]
    assert figure(result, "Acumatica requests per exception (worker)") == 0  # no re-read; no OwnerMap, no lines
    assert figure(result, "Jira calls per unchanged document on re-poll") == 0
    assert figure(result, "naive: Acumatica requests per 1,000 documents polled") >= 1000
    assert figure(result, "webhook -> release confirmed, p50") > 0


def test_cli_runs_one_benchmark_and_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(classify, "QUICK", classify.Config(documents=100, repeats=1))
    output, markdown = tmp_path / "bench.json", tmp_path / "BENCHMARKS.md"

    assert main(["classify", "--quick", "--json", str(output), "--markdown", str(markdown)]) == 0

    assert "== classify:" in capsys.readouterr().out
    [written] = json.loads(output.read_text())
    assert written["benchmark"] == "classify" and written["passed"] is True
    text = markdown.read_text()
    assert "- commit: " in text and "- machine: " in text and "| classify |" in text


def test_cli_refuses_an_unknown_benchmark() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2


def test_routing_counts_acumatica_requests_per_configuration_and_names_each_dynamodb_write() -> None:
    result = routing.run(routing.Config(documents=130, orders=10))

    assert result.passed, [c for c in result.checks if not c.passed]
    batched, naive = (figure(result, "Acumatica requests, OwnerMap"),
                      figure(result, "naive: Acumatica requests, OwnerMap (one read per bill)"))
    assert batched < naive  # two batched reads for the page instead of two per new bill issue
    assert "document state" in next(f.note for f in result.figures if f.name.startswith("DynamoDB items written"))
