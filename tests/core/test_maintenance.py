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

