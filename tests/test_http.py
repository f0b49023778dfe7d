"""The shared HTTP error helpers both adapters rely on: how long to wait, and whether a failed call may be resent."""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from connector.errors import TransientError, UncertainOutcome
from connector.http import retry_after_seconds, transport_error


def answer(**headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return response


def refused_connection() -> requests.ConnectionError:
    """What requests raises when nothing listens: a ``MaxRetryError`` whose reason is a ``NewConnectionError``."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/rest/api/3/issue", reason))


def reset_after_sending() -> requests.ConnectionError:
    reason = ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    return requests.ConnectionError(MaxRetryError(None, "/rest/api/3/issue", reason))


def read_timeout() -> requests.ReadTimeout:
    return requests.ReadTimeout(ReadTimeoutError(None, "/rest/api/3/issue", "Read timed out. (read timeout=30)"))


@pytest.mark.parametrize("header, expected", [("7", 7.0), ("2.5", 2.5), (" 3 ", 3.0), ("0", 0.0), ("-4", 0.0)])
def test_retry_after_in_seconds_is_read_and_never_negative(header, expected):
    assert retry_after_seconds(answer(**{"Retry-After": header})) == expected


def test_retry_after_as_an_http_date_is_the_time_left_until_then():
    moment = datetime.now(timezone.utc) + timedelta(seconds=120)
    seconds = retry_after_seconds(answer(**{"Retry-After": email.utils.format_datetime(moment, usegmt=True)}))
    assert seconds is not None and 110 <= seconds <= 120


def test_retry_after_as_a_past_http_date_means_no_wait():
    assert retry_after_seconds(answer(**{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0


@pytest.mark.parametrize("header", ["soon", "nan", "inf", "Wed, 99 Foo 2015"])
def test_unreadable_retry_after_is_none_so_the_caller_picks_its_own_wait(header):
    assert retry_after_seconds(answer(**{"Retry-After": header})) is None


def test_missing_retry_after_is_none():
    assert retry_after_seconds(answer()) is None


@pytest.mark.parametrize("header, expected", [("0", 1.0), ("0.2", 1.0), ("5", 5.0)])
def test_minimum_raises_short_waits_only(header, expected):
    assert retry_after_seconds(answer(**{"Retry-After": header}), minimum=1.0) == expected


@pytest.mark.parametrize("failure", [
    refused_connection(),
    requests.ConnectTimeout("connect timed out"),
])
def test_a_post_that_never_connected_is_plainly_transient(failure):
    error = transport_error("Jira", "POST", "/rest/api/3/issue", failure, may_have_happened=True)
    assert type(error) is TransientError


@pytest.mark.parametrize("failure", [read_timeout(), reset_after_sending()])
def test_a_post_that_failed_after_sending_is_an_uncertain_outcome(failure):
    error = transport_error("Acumatica", "POST", "/entity/Default/24.200.001/Bill", failure, may_have_happened=True)
    assert isinstance(error, UncertainOutcome)
    assert "may have happened" in str(error)


@pytest.mark.parametrize("failure", [read_timeout(), reset_after_sending(), refused_connection()])
def test_a_call_without_side_effects_is_only_transient_whatever_failed(failure):
    error = transport_error("Jira", "GET", "/rest/api/3/issue/AP-1", failure, may_have_happened=False)
    assert type(error) is TransientError


def test_the_message_names_system_method_path_and_failure_but_not_the_request():
    failure = requests.ReadTimeout("read timed out", request=requests.Request(
        "POST", "https://example.test/x?token=abc", headers={"Authorization": "Bearer secret-token"}))
    error = transport_error("Jira", "POST", "/rest/api/3/issue", failure, may_have_happened=True)
    assert str(error).startswith("Jira POST /rest/api/3/issue ")
    assert "ReadTimeout" in str(error)
    assert "secret-token" not in str(error) and "token=abc" not in str(error)
