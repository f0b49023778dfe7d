"""A host that does not answer is named, with the setting that points at it and the cause, in seconds."""

from __future__ import annotations

import time

import boto3
import pytest
import requests
from botocore.config import Config

from connector import timings
from connector.http import make_session
from connector_cli.reach import (URL_SETTINGS, Endpoint, HostUnreachable, endpoints, probe, unreachable,
                                 use_operator_timeouts)

ENV = {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_API_URL": "http://127.0.0.1:{port}",
       "JIRA_AUTH_URL": "http://127.0.0.1:{port}/"}


def _error_of(call) -> BaseException:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the error is what is examined
        return error
    raise AssertionError("the call answered")


def test_refused_connection_names_the_settings_pointing_at_the_host(closed_port):
    env = {name: value.format(port=closed_port) for name, value in ENV.items()}
    why = unreachable(_error_of(lambda: requests.get(f"http://127.0.0.1:{closed_port}/rest", timeout=2)), env)
    assert why is not None and why.cause == "refused"
    assert why.message == (f"JIRA_API_URL (JiraApiUrl), JIRA_AUTH_URL (JiraAuthUrl) http://127.0.0.1:{closed_port}: "
                           "connection refused (nothing listens on that port)")
    assert "connector local" in why.fix


def test_a_connection_never_accepted_is_told_apart_from_a_silent_host(blackhole_port, silent_port):
    hole = unreachable(_error_of(lambda: requests.get(f"http://127.0.0.1:{blackhole_port}/", timeout=(1, 1))), {})
    silent = unreachable(_error_of(lambda: requests.get(f"http://127.0.0.1:{silent_port}/", timeout=(1, 1))), {})
    assert hole.cause == "no-connection" and "never accepted" in hole.detail and "firewall" in hole.fix
    assert silent.cause == "no-answer" and "connected" in silent.detail and "did not answer" in silent.fix


def test_a_name_that_does_not_resolve_is_a_typo_to_look_for():
    why = unreachable(_error_of(lambda: requests.get("http://acme.invalid/", timeout=2)),
                      {"ACUMATICA_URL": "http://acme.invalid"})
    assert why.cause == "no-name" and why.message.startswith("ACUMATICA_URL (AcumaticaUrl) http://acme.invalid:")
    assert "typo" in why.fix


def test_aws_endpoints_are_named_too(closed_port, blackhole_port):
    def list_queues(port: int):
        return boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                            config=Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1})
                            ).list_queues()

    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}"}
    refused = unreachable(_error_of(lambda: list_queues(closed_port)), env)
    assert refused.cause == "refused" and refused.message.startswith(f"AWS_ENDPOINT_URL http://127.0.0.1:{closed_port}")
    assert unreachable(_error_of(lambda: list_queues(blackhole_port)), {}).cause == "no-connection"


def test_an_error_with_an_answer_is_not_taken_for_an_unreachable_host():
    assert unreachable(ValueError("no such field"), ENV) is None


def test_the_connectors_own_errors_keep_the_cause_even_raised_from_none(closed_port):
    """The clients raise ``TransientError(...) from None``: the context is still there to be read."""
    from connector.acumatica import AcumaticaClient

    client = AcumaticaClient(base_url=f"http://127.0.0.1:{closed_port}", endpoint_version="24.200.001",
                             tokens=None, session=make_session(total=0))
    why = unreachable(_error_of(client.check_endpoint_version), {"ACUMATICA_URL": f"http://127.0.0.1:{closed_port}"})
    assert why.cause == "refused" and why.endpoint.settings == (("ACUMATICA_URL", "AcumaticaUrl"),)


def test_one_endpoint_per_host_with_every_setting_that_names_it():
    found = endpoints({"ACUMATICA_URL": "https://acme.acumatica.com/", "JIRA_API_URL": "http://127.0.0.1:9",
                       "JIRA_AUTH_URL": "http://127.0.0.1:9"})
    assert [e.label for e in found] == ["ACUMATICA_URL (AcumaticaUrl) https://acme.acumatica.com",
                                        "JIRA_API_URL (JiraApiUrl), JIRA_AUTH_URL (JiraAuthUrl) http://127.0.0.1:9"]
    defaults = endpoints({"ACUMATICA_URL": "https://acme.acumatica.com"})
    assert [e.url for e in defaults][1:] == ["https://api.atlassian.com", "https://auth.atlassian.com"]


def test_the_settings_named_are_the_templates():
    from connector_local.stack import PARAMETER_ENV

    for variable, parameter, _ in URL_SETTINGS:
        if parameter:
            assert PARAMETER_ENV[parameter] == variable


def test_a_probe_of_a_silent_host_gives_up_after_the_tools_read_timeout(silent_port):
    started = time.monotonic()
    with pytest.raises(HostUnreachable) as refused:
        probe(Endpoint(f"http://127.0.0.1:{silent_port}", (("JIRA_API_URL", "JiraApiUrl"),)))
    assert time.monotonic() - started < timings.OPERATOR_READ_TIMEOUT + 2
    assert refused.value.why.cause == "no-answer"


def test_the_session_caps_the_timeouts_callers_ask_for(silent_port):
    """The functions' clients ask for a 60 s read; the tool's session gives them its own short one."""
    session = make_session(total=0, max_timeout=(0.5, 0.5))
    started = time.monotonic()
    with pytest.raises(requests.RequestException):
        session.get(f"http://127.0.0.1:{silent_port}/", timeout=(10, 60))
    assert time.monotonic() - started < 3
    with pytest.raises(requests.RequestException):
        session.get(f"http://127.0.0.1:{silent_port}/")  # no timeout at all: the cap still holds
    assert time.monotonic() - started < 5


def test_without_a_cap_the_functions_session_keeps_the_timeout_asked_for():
    from connector.http import GatedAdapter

    adapter = make_session().get_adapter("https://")
    assert isinstance(adapter, GatedAdapter) and adapter.max_timeout is None


def test_the_aws_timeouts_hold_while_active_and_are_put_back(blackhole_port):
    before = boto3.DEFAULT_SESSION
    with use_operator_timeouts():
        config = boto3.client("sqs", region_name="us-east-1")._client_config
        assert config.connect_timeout == timings.OPERATOR_CONNECT_TIMEOUT
        assert config.read_timeout == timings.OPERATOR_AWS_READ_TIMEOUT
        assert config.retries["total_max_attempts"] == timings.OPERATOR_AWS_ATTEMPTS
    assert boto3.DEFAULT_SESSION is before
