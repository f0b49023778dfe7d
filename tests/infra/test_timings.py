"""The timings the guarantees rest on agree with each other and with template.yaml (see connector/timings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.decode import decode

from connector import timings
from connector.resolve import SETTLE_AFTER_SECONDS
from connector.sync import COMMENT_RETAKE_SECONDS, CREATE_RETAKE_SECONDS
from connector.tokens import RotatingTokens

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return decoded


def properties(template: dict, name: str) -> dict:
    return template["Resources"][name]["Properties"]


def test_the_template_uses_the_timings_module(template):
    assert properties(template, "WorkerFunction")["Timeout"] == timings.WORKER_TIMEOUT_SECONDS
    assert properties(template, "PollerFunction")["Timeout"] == timings.POLLER_TIMEOUT_SECONDS
    assert properties(template, "WebhookFunction")["Timeout"] == timings.WEBHOOK_TIMEOUT_SECONDS
    assert properties(template, "MaintenanceFunction")["Timeout"] == timings.MAINTENANCE_TIMEOUT_SECONDS
    work = properties(template, "WorkQueue")
    assert work["VisibilityTimeout"] == timings.VISIBILITY_TIMEOUT_SECONDS
    assert work["MessageRetentionPeriod"] == timings.MESSAGE_RETENTION_SECONDS
    assert properties(template, "DeadLetterQueue")["MessageRetentionPeriod"] == timings.DEAD_LETTER_RETENTION_SECONDS
    receive = template["Parameters"]["MaxReceiveCount"]
    assert receive["Default"] == timings.MAX_RECEIVE_COUNT_DEFAULT
    assert receive["MinValue"] == timings.MAX_RECEIVE_COUNT_MIN


def test_the_core_uses_the_timings_module():
    assert CREATE_RETAKE_SECONDS == timings.CREATE_RETAKE_SECONDS
    assert COMMENT_RETAKE_SECONDS == timings.COMMENT_RETAKE_SECONDS
    assert SETTLE_AFTER_SECONDS == timings.SETTLE_AFTER_SECONDS
    defaults = RotatingTokens.__init__.__kwdefaults__
    assert defaults["lease_seconds"] == timings.TOKEN_LEASE_SECONDS
    assert defaults["wait_seconds"] == timings.TOKEN_WAIT_SECONDS


def test_the_visibility_timeout_covers_six_worker_timeouts():
    assert timings.WORKER_TIMEOUT_SECONDS < timings.VISIBILITY_TIMEOUT_SECONDS
    assert timings.VISIBILITY_TIMEOUT_SECONDS >= 6 * timings.WORKER_TIMEOUT_SECONDS


def test_enough_attempts_to_outlive_a_claim_left_by_a_crashed_attempt():
    assert timings.MAX_RECEIVE_COUNT_MIN >= 3
    assert timings.MAX_RECEIVE_COUNT_DEFAULT >= timings.MAX_RECEIVE_COUNT_MIN
    # The attempts after the first are spread over (count - 1) visibility timeouts: at least one of them comes after
    # the claim it found in flight may be retaken or settled, even with the fewest attempts allowed.
    retries_span = (timings.MAX_RECEIVE_COUNT_MIN - 1) * timings.VISIBILITY_TIMEOUT_SECONDS
    for window in (timings.CREATE_RETAKE_SECONDS, timings.COMMENT_RETAKE_SECONDS, timings.SETTLE_AFTER_SECONDS):
        assert timings.WORKER_TIMEOUT_SECONDS < window < retries_span
        assert window < timings.MESSAGE_RETENTION_SECONDS
    assert timings.CREATE_RETAKE_SECONDS > timings.JIRA_SEARCH_LAG_SECONDS


def test_a_dead_letter_outlives_the_message_it_was():
    assert timings.DEAD_LETTER_RETENTION_SECONDS > timings.MESSAGE_RETENTION_SECONDS


def test_the_token_lease_outlasts_the_slowest_refresh():
    assert timings.TOKEN_LEASE_SECONDS > timings.slowest_token_refresh()
    assert timings.TOKEN_WAIT_SECONDS < timings.WORKER_TIMEOUT_SECONDS - timings.RECORD_RESERVE_SECONDS


def test_a_record_fits_in_the_worker_and_a_wait_in_place_fits_in_a_record():
    assert timings.RECORD_RESERVE_SECONDS < timings.WORKER_TIMEOUT_SECONDS
    assert timings.LONGEST_WAIT_IN_PLACE_SECONDS < timings.WORKER_TIMEOUT_SECONDS - timings.RECORD_RESERVE_SECONDS
    assert timings.VISIBILITY_TIMEOUT_SECONDS < timings.LONGEST_VISIBILITY_SECONDS


def test_the_poller_gets_no_lambda_retries(template):
    poller = properties(template, "PollerFunction")
    assert poller["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert poller["Events"]["PollTick"]["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] == 0


def test_an_imported_table_version_takes_effect_within_its_promise():
    """A container reads the pointer at most ``TABLES_CACHE_SECONDS`` after a change and keeps one version for a whole
    invocation: the last document routed on the old tables starts before the cache age plus a worker's timeout."""
    assert timings.TABLES_CACHE_SECONDS + timings.WORKER_TIMEOUT_SECONDS <= timings.TABLES_TAKE_EFFECT_SECONDS <= 300
    import inspect

    from connector.table_versions import TablesInEffect

    assert inspect.signature(TablesInEffect).parameters["max_age"].default == timings.TABLES_CACHE_SECONDS


def test_a_revoked_group_membership_stops_deciding_within_the_promised_minutes():
    assert 0 < timings.GROUP_MEMBERSHIP_CACHE_SECONDS <= timings.GROUP_MEMBERSHIP_STALEST_SECONDS


def test_the_session_lease_outlasts_its_holders_longest_silence():
    """A live holder renews at every status poll; between renewals it is silent for at most one POST or one pause and
    status request, each up to the full request timeout."""
    longest_silence = sum(timings.ACUMATICA_TIMEOUT) + timings.ACUMATICA_STATUS_POLL_MAX_SECONDS
    assert timings.SESSION_LEASE_SECONDS > longest_silence


def test_work_held_back_by_a_busy_session_outlives_a_crashed_holders_lease_before_counting_attempts():
    """Each deferral first waits in place for what the invocation affords: a record is started with at least
    RECORD_RESERVE_SECONDS left, of which the gates keep 10 s in reserve."""
    from connector.http import RetryGates

    least_wait_per_deferral = timings.RECORD_RESERVE_SECONDS - RetryGates().reserve_seconds
    assert timings.MAX_SESSION_DEFERRALS * least_wait_per_deferral > 2 * timings.SESSION_LEASE_SECONDS


def test_consecutive_resolution_sweeps_leave_no_resolution_unseen():
    """A resolution becomes searchable within JIRA_SEARCH_LAG_SECONDS and is left to its delivery for the grace; the
    first sweep after both has it in its window only if the windows overlap by more than either."""
    assert timings.RESOLUTION_SWEEP_OVERLAP_SECONDS >= timings.JIRA_SEARCH_LAG_SECONDS
    assert timings.RESOLUTION_SWEEP_OVERLAP_SECONDS >= timings.RESOLUTION_SWEEP_GRACE_SECONDS
    assert timings.RESOLUTION_SWEEP_GRACE_SECONDS >= 60  # deliveries arrive within seconds; a minute is generous


def test_the_deleted_document_check_leaves_the_maintenance_run_time_for_its_report_and_has_most_of_it():
    assert 0 < timings.DELETION_CHECK_RESERVE_SECONDS <= timings.MAINTENANCE_TIMEOUT_SECONDS / 4
