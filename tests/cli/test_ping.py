"""`connector ping`'s checklist: prerequisites first, concurrent where it may, one grant at a time, a deadline, and a
fix that matches the cause of each failure."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from connector import timings
from connector.errors import AuthenticationError, NotFoundError
from connector_cli.ping import Check, Checklist, explain
from connector_cli.reach import Endpoint, HostUnreachable, OperatorWiring, Unreachable


def fails(error: BaseException):
    def run() -> None:
        raise error

    return run


def outcome_of(results, check_id):
    return next(r for r in results if r.check.id == check_id)


def test_a_check_whose_prerequisite_failed_is_skipped_naming_it():
    host = Endpoint("http://127.0.0.1:9", (("ACUMATICA_URL", "AcumaticaUrl"),))
    why = Unreachable(host, "refused", "connection refused (nothing listens on that port)")
    results = Checklist([
        Check("reach", "ACUMATICA_URL (AcumaticaUrl) http://127.0.0.1:9 answers", fails(HostUnreachable(why))),
        Check("version", "Acumatica endpoint version", lambda: None, ("reach",)),
        Check("read", "Acumatica Bill readable", lambda: None, ("version",)),
        Check("jira", "Jira token", lambda: None),
    ], {}).run()
    assert [r.status for r in results] == ["fail", "skip", "skip", "ok"]
    assert outcome_of(results, "reach").error == "connection refused (nothing listens on that port)"
    assert "start it again" in outcome_of(results, "reach").fix
    assert "ACUMATICA_URL (AcumaticaUrl) http://127.0.0.1:9 answers" in outcome_of(results, "version").error
    assert "Acumatica endpoint version" in outcome_of(results, "read").error


def test_checks_run_concurrently_except_those_sharing_a_grant():
    running: dict[str, int] = {"acumatica": 0, "all": 0}
    peak = {"acumatica": 0, "all": 0}
    guard = threading.Lock()

    def work(serial: str | None):
        def run() -> None:
            with guard:
                for key in ("all", *([serial] if serial else [])):
                    running[key] += 1
                    peak[key] = max(peak[key], running[key])
            time.sleep(0.2)
            with guard:
                for key in ("all", *([serial] if serial else [])):
                    running[key] -= 1
        return run

    checks = [Check(f"a{n}", f"acumatica {n}", work("acumatica"), serial="acumatica") for n in range(3)]
    checks += [Check(f"j{n}", f"jira {n}", work(None)) for n in range(3)]
    started = time.monotonic()
    results = Checklist(checks, {}).run()
    assert all(r.status == "ok" for r in results)
    assert peak["acumatica"] == 1 and peak["all"] >= 3
    assert time.monotonic() - started < 1.2  # 3 serial checks of 0.2 s, the rest beside them


def test_a_check_that_hangs_is_reported_at_the_deadline_and_its_dependents_skipped():
    stuck = threading.Event()
    started = time.monotonic()
    results = Checklist([
        Check("slow", "Jira project AP", lambda: stuck.wait(30)),
        Check("after", "Jira field", lambda: None, ("slow",)),
    ], {}, deadline_seconds=0.5).run()
    stuck.set()
    assert time.monotonic() - started < 2
    assert outcome_of(results, "slow").status == "late" and "0.5 s" in outcome_of(results, "slow").error
    assert outcome_of(results, "after").status == "skip" and "did not finish" in outcome_of(results, "after").error


def test_the_fix_matches_the_cause_not_the_check():
    check = Check("project", "Jira project AP", lambda: None, fix="set JiraProjectKey to a project you can browse",
                  fixes=((AuthenticationError, "run `connector connect jira`"),))
    assert explain(check, NotFoundError("Jira answered 404 to GET /project/AP"), {})[1].startswith("set JiraProjectKey")
    assert explain(check, AuthenticationError("Jira answered 401"), {})[1] == "run `connector connect jira`"
    host = Endpoint("https://api.atlassian.com", (("JIRA_API_URL", "JiraApiUrl"),))
    error, fix = explain(check, HostUnreachable(Unreachable(host, "no-connection", "no answer within 3 s")), {})
    assert error == "no answer within 3 s" and "JiraProjectKey" not in fix


def test_a_failure_is_told_without_python_type_names():
    error, _ = explain(Check("x", "x", lambda: None), LookupError("Bill offers Approve, not 'ApproveDocument'"), {})
    assert error == "Bill offers Approve, not 'ApproveDocument'"


def test_the_operator_timings_fit_the_promised_answer_time():
    budget = timings.OPERATOR_ANSWER_SECONDS - timings.OPERATOR_STARTUP_SECONDS
    http_attempts = 1 + timings.OPERATOR_CONNECT_RETRIES
    assert http_attempts * timings.OPERATOR_CONNECT_TIMEOUT <= budget  # a host that never accepts
    assert timings.OPERATOR_CONNECT_TIMEOUT + timings.OPERATOR_READ_TIMEOUT <= budget  # accepts, never answers
    assert timings.OPERATOR_LONGEST_WAIT_SECONDS + timings.OPERATOR_READ_TIMEOUT <= budget  # a Retry-After, then
    assert timings.OPERATOR_AWS_ATTEMPTS * timings.OPERATOR_CONNECT_TIMEOUT <= budget
    assert timings.OPERATOR_AWS_ATTEMPTS * timings.OPERATOR_AWS_READ_TIMEOUT <= budget
    # ping: a probe fits before the deadline, and the deadline before the promised answer
    assert timings.OPERATOR_CONNECT_TIMEOUT + timings.OPERATOR_READ_TIMEOUT < timings.PING_DEADLINE_SECONDS
    assert timings.PING_DEADLINE_SECONDS + timings.OPERATOR_STARTUP_SECONDS <= timings.OPERATOR_ANSWER_SECONDS
    # and the functions keep their own, longer ones
    assert timings.OPERATOR_READ_TIMEOUT < min(timings.JIRA_TIMEOUT[1], timings.ACUMATICA_TIMEOUT[1])


def test_the_checks_threads_read_the_tables_in_effect_once():
    """Several checks ask for the tables in effect at the same moment (who may decide, the decline actions, the
    owner map...): one read answers them all."""
    reads = []

    class SlowTables:
        def get(self):
            reads.append(threading.get_ident())
            time.sleep(0.2)
            return SimpleNamespace(settings=object())

    wiring = OperatorWiring({})
    wiring.__dict__["tables"] = SlowTables()
    asked = [threading.Thread(target=wiring.settings_in_effect) for _ in range(4)]
    for thread in asked:
        thread.start()
    for thread in asked:
        thread.join()
    assert len(reads) == 1
