"""Every setting is checked at cold start, and a bad one is refused with a sentence naming it and what it allows."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from connector.config import Settings
from connector.errors import ConfigurationError

BASE = {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_PROJECT_KEY": "AP",
        "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE, **overrides})


def test_the_defaults_are_valid() -> None:
    parsed = settings()
    assert parsed.poll_overlap_minutes == 10 and parsed.document_types == ("Bill", "PurchaseOrder", "Check")


@pytest.mark.parametrize("name, value, says", [
    ("OWNER_MAP", "not json", "OWNER_MAP"),
    ("OWNER_MAP", "[1, 2]", "OWNER_MAP"),
    ("DOCUMENT_TYPES", "Bill,Invoice", "Invoice"),
    ("POLL_OVERLAP_MINUTES", "ten", "POLL_OVERLAP_MINUTES must be a whole number"),
    ("POLL_OVERLAP_MINUTES", "-1", "from 0 to 1440"),
    ("POLL_OVERLAP_MINUTES", "1441", "from 0 to 1440"),
    ("POLL_PAGE_SIZE", "0", "POLL_PAGE_SIZE"),
    ("FULL_PASS_DAYS", "-3", "FULL_PASS_DAYS must be at least 0"),
    ("INITIAL_LOOKBACK_DAYS", "1.5", "INITIAL_LOOKBACK_DAYS"),
    ("ACUMATICA_REQUESTS_PER_MINUTE", "-1", "ACUMATICA_REQUESTS_PER_MINUTE"),
    ("JIRA_EXTERNAL_ID_FIELD", "summary", "customfield_10050"),
    ("ACUMATICA_URL", "acme.acumatica.com", "ACUMATICA_URL must be an https:// URL"),
    ("JIRA_SITE_URL", "acme.atlassian.net", "JIRA_SITE_URL"),
])
def test_a_bad_setting_is_refused_with_its_name(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        settings(**{name: value})
    message = str(refused.value)
    assert says in message and "\n" not in message


@given(st.text(max_size=12))
def test_any_overlap_value_is_either_a_valid_number_or_a_clear_refusal(value: str) -> None:
    try:
        parsed = settings(POLL_OVERLAP_MINUTES=value)
    except ConfigurationError as refused:
        assert "POLL_OVERLAP_MINUTES" in str(refused)
    else:
        assert 0 <= parsed.poll_overlap_minutes <= 1440
