"""Credentials go only to https base URLs (plain http only on the loopback interface), and a token only to URLs of
the instance's own scheme, host and port: checked when the configuration is parsed, and by the template's patterns
the same way, so a deploy refuses what a cold start would."""

from __future__ import annotations

import re

import pytest
from cfnlint.decode import decode
from hypothesis import given
from hypothesis import strategies as st

from connector.config import Settings
from connector.errors import ConfigurationError
from connector.urls import base_url_problem, same_origin
from tests.conftest import ROOT

REQUIRED = {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_PROJECT_KEY": "AP",
            "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"}
URL_SETTINGS = {"ACUMATICA_URL": "AcumaticaUrl", "JIRA_API_URL": "JiraApiUrl", "JIRA_AUTH_URL": "JiraAuthUrl",
                "JIRA_SITE_URL": "JiraSiteUrl"}
ACCEPTED = ["https://acme.acumatica.com", "https://acme.acumatica.com/", "https://erp.example.com:8443/AcumaticaERP",
            "http://127.0.0.1:8080", "http://localhost:5000/erp", "http://[::1]:9000"]
REFUSED = ["http://acme.acumatica.com", "http://10.0.0.5:8080", "http://127.0.0.1.evil.example",
           "https://user:password@acme.acumatica.com", "https://token@acme.acumatica.com", "ftp://acme.example",
           "acme.acumatica.com", "https://", "http://localhost.evil.example", "https://acme.example/?next=x",
           "https://ërp.example.com", 'https://acme.example/"quoted"', "https://acme.example/a b"]


@pytest.fixture(scope="module")
def patterns() -> dict[str, str]:
    body, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return {name: body["Parameters"][name]["AllowedPattern"] for name in URL_SETTINGS.values()}


@pytest.mark.parametrize("variable", sorted(URL_SETTINGS))
@pytest.mark.parametrize("url", ACCEPTED)
def test_https_and_loopback_http_base_urls_are_accepted(variable: str, url: str) -> None:
    settings = Settings.from_env({**REQUIRED, variable: url})
    assert getattr(settings, variable.lower()) == url.rstrip("/")


@pytest.mark.parametrize("variable", sorted(URL_SETTINGS))
@pytest.mark.parametrize("url", REFUSED)
def test_plain_http_elsewhere_and_urls_with_credentials_fail_the_cold_start_naming_the_setting(variable: str,
                                                                                                url: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({**REQUIRED, variable: url})
    message = str(refused.value)
    assert message.startswith(variable) and "\n" not in message
    assert ":password@" not in message and "token@" not in message  # the URL's own credentials never echo


@pytest.mark.parametrize("url", ACCEPTED + REFUSED)
def test_the_template_patterns_agree_with_the_cold_start(patterns: dict[str, str], url: str) -> None:
    accepted = base_url_problem(url) is None
    for name, pattern in patterns.items():
        assert bool(re.fullmatch(pattern, url.rstrip("/") if url.endswith(".com/") else url)) == accepted, name


@given(scheme=st.sampled_from(["http", "https", "HTTPS"]), host=st.sampled_from(["erp.example.com", "ERP.example.com"]),
       port=st.sampled_from(["", ":443", ":80", ":8443"]), other=st.sampled_from(
           ["https://erp.example.com", "http://erp.example.com", "https://erp.example.com:8443",
            "https://evil.example.com", "https://erp.example.com.evil.example"]))
def test_a_url_keeps_the_origin_only_with_the_same_scheme_host_and_effective_port(scheme, host, port, other) -> None:
    url = f"{scheme}://{host}{port}/entity/status/1"
    lowered = scheme.lower()
    effective = port[1:] if port else ("443" if lowered == "https" else "80")
    expected = {"https://erp.example.com": (lowered, effective) == ("https", "443"),
                "http://erp.example.com": (lowered, effective) == ("http", "80"),
                "https://erp.example.com:8443": (lowered, effective) == ("https", "8443")}.get(other, False)
    assert same_origin(url, other) is expected
