"""The daily health run: every check reports on its own, and problems name what a person should do."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from connector.config import Settings
from connector.maintenance import run_maintenance
from connector.tokens import RotatingTokens
from tests.fakes import MemoryLock, MemorySecret


class Healthy:
    def check_endpoint_version(self):
        return None

    def access_token(self):
        return "token"

    def update_secret(self, change):
        return change({})

    def project(self):
        return {"key": "AP"}

    def field_exists(self, field_id):
        return True

    def ensure_webhook(self, url, jql, known_ids):
        return [7], datetime(2026, 12, 24, tzinfo=timezone.utc)


SETTINGS = Settings(acumatica_url="https://acme", jira_project_key="AP", jira_external_id_field="customfield_10050",
                    webhook_url="https://api.example.com/jira/webhook")


def test_healthy_run_refreshes_the_webhook_and_stores_its_ids_under_the_token_lease():
    secret = MemorySecret({"client_id": "c", "refresh_token": "r1"})
    lock = MemoryLock()
    held_while_writing = []

    class Watching(MemorySecret):
        def write(self, value):
            held_while_writing.append(not lock.acquire("token-refresh-jira", "someone-else", 1.0))
            super().write(value)

    secret = Watching(secret.read())
    tokens = RotatingTokens(name="jira", secrets=secret, lock=lock,
                            obtain=lambda s: {"access_token": "t", "refresh_token": "r2",
                                              "expires_at": time.time() + 3600})
    healthy = Healthy()
    report = run_maintenance(SETTINGS, acumatica=healthy, jira=healthy, acumatica_tokens=healthy,
                             jira_tokens=tokens, jira_secret=secret, dead_letters=lambda: 0)
    assert report.failures == {}
    stored = secret.read()
    assert stored["webhook_ids"] == [7] and stored["client_id"] == "c" and stored["refresh_token"] == "r2"
    assert held_while_writing and all(held_while_writing)


def test_dead_letters_and_a_failing_check_are_reported_without_skipping_the_others():
    class BrokenAcumatica(Healthy):
        def check_endpoint_version(self):
            raise RuntimeError("serves 25.200.001 only")

    healthy = Healthy()
    report = run_maintenance(SETTINGS, acumatica=BrokenAcumatica(), jira=healthy, acumatica_tokens=healthy,
                             jira_tokens=healthy, jira_secret=MemorySecret({}), dead_letters=lambda: 3)
    assert set(report.failures) == {"acumatica_endpoint", "dead_letter_queue"}
    assert "connector replay" in report.failures["dead_letter_queue"]
    assert "jira_webhook" in report.checks



class Searching(Healthy):
    """Jira's search as the sweep sees it: resolved issues, some carrying no usable external id."""

    def __init__(self, issues):
        self.issues, self.queries = issues, []

    def search_issues(self, jql, fields=()):
        self.queries.append(jql)
        return iter(self.issues)


class Queue:
    def __init__(self):
        self.sent = []

    def send(self, messages):
        self.sent.extend(messages)


def test_the_sweep_queues_resolved_issues_since_the_last_sweep_and_moves_its_watermark(store):
    from connector.maintenance import SWEEP_CURSOR, sweep_resolutions
    from connector.ports import IssueRef

    jira = Searching([IssueRef("10001", "AP-1", "Done", "done", "Bill:Bill:000123"),
                      IssueRef("10002", "AP-2", "Done", "done", "not an id"), IssueRef("10003", "AP-3", "Done")])
    queue, first = Queue(), datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    sweep_resolutions(SETTINGS, jira=jira, store=store, queue=queue, now=first, correlation_id="c")
    assert [(m.kind, m.external_id, m.issue_key, m.issue_id, m.source) for m in queue.sent] == [
        ("resolve", "Bill:Bill:000123", "AP-1", "10001", "sweep")]
    assert 'statusCategory = Done AND resolved >= "-2880m" AND resolved <= "-2m"' in jira.queries[0]
    assert store.get_cursor(SWEEP_CURSOR).watermark == first
    sweep_resolutions(SETTINGS, jira=jira, store=store, queue=queue, now=first.replace(minute=15), correlation_id="c")
    assert 'resolved >= "-21m" AND resolved <= "-2m"' in jira.queries[1]  # 15 minutes since, plus the overlap
    named = Settings(**{**SETTINGS.__dict__, "jira_resolved_statuses": ("Approved", 'Say "yes"')})
    sweep_resolutions(named, jira=jira, store=store, queue=queue, now=first.replace(minute=30), correlation_id="c")
    assert 'status IN ("Approved", "Say \\"yes\\"") AND updated >= "-21m" AND updated <= "-2m"' in jira.queries[2]


def test_the_sweep_leaves_issues_of_entities_the_deployment_does_not_handle_as_the_webhook_does(store):
    """An issue naming a Check, where DocumentTypes no longer lists Check: its delivery is ignored (200), so the sweep
    must not bring its resolution to the worker either, which would act on it."""
    from connector.maintenance import sweep_resolutions
    from connector.ports import IssueRef

    bills_only = Settings(**{**SETTINGS.__dict__, "document_types": ("Bill",)})
    jira = Searching([IssueRef("10001", "AP-1", "Done", "done", "Bill:Bill:000123"),
                      IssueRef("10004", "AP-4", "Done", "done", "Check:Payment:000044")])
    queue = Queue()
    summary = sweep_resolutions(bills_only, jira=jira, store=store, queue=queue,
                                now=datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc), correlation_id="c")
    assert [m.external_id for m in queue.sent] == ["Bill:Bill:000123"] and summary.startswith("1 resolved issue")


def test_a_failed_search_keeps_the_watermark_so_nothing_is_skipped(store):
    from connector.maintenance import SWEEP_CURSOR, sweep_resolutions

    class Down(Healthy):
        def search_issues(self, jql, fields=()):
            raise RuntimeError("Jira is down")

    report = run_maintenance(SETTINGS, acumatica=Healthy(), jira=Down(), acumatica_tokens=Healthy(),
                             jira_tokens=Healthy(), jira_secret=MemorySecret({}), dead_letters=lambda: 0,
                             sweep=lambda: sweep_resolutions(SETTINGS, jira=Down(), store=store, queue=Queue(),
                                                             now=datetime.now(timezone.utc), correlation_id="c"))
    assert "resolution_sweep" in report.failures and store.get_cursor(SWEEP_CURSOR).watermark is None


def test_verification_material_mirrors_the_credential_secrets_so_a_cleared_secret_stops_authenticating():
    from connector.maintenance import copy_verification_material

    jira = MemorySecret({"client_secret": "cs", "webhook_secret": "ws", "refresh_token": "rt", "cloud_id": "c-1"})
    acumatica = MemorySecret({"password": "pw", "push_secret": ""})
    webhook = MemorySecret({"push_secret": "ps"})  # a push secret revoked at its source since the last copy
    assert "copied" in copy_verification_material(jira, acumatica, webhook)
    assert webhook.read() == {"webhook_secret": "ws", "client_secret": "cs", "push_secret": "", "cloud_id": "c-1"}
    assert "current" in copy_verification_material(jira, acumatica, webhook) and webhook.writes == 1
