"""The daily health run: every check reports on its own, and problems name what a person should do."""

from __future__ import annotations

from datetime import datetime, timezone

from connector.config import Settings
from connector.maintenance import run_maintenance
from tests.fakes import MemorySecret


class Healthy:
    def check_endpoint_version(self):
        return None

    def access_token(self):
        return "token"

    def project(self):
        return {"key": "AP"}

    def field_exists(self, field_id):
        return True

    def ensure_webhook(self, url, jql, known_ids):
        return [7], datetime(2026, 12, 24, tzinfo=timezone.utc)


SETTINGS = Settings(acumatica_url="https://acme", jira_project_key="AP", jira_external_id_field="customfield_10050",
                    webhook_url="https://api.example.com/jira/webhook")


def test_healthy_run_refreshes_the_webhook_and_stores_its_ids():
    secret = MemorySecret({"client_id": "c"})
    healthy = Healthy()
    report = run_maintenance(SETTINGS, acumatica=healthy, jira=healthy, acumatica_tokens=healthy,
                             jira_tokens=healthy, jira_secret=secret, dead_letters=lambda: 0)
    assert report.failures == {}
    assert secret.read()["webhook_ids"] == [7] and secret.read()["client_id"] == "c"


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

