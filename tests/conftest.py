"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# No test may reach real AWS: dummy credentials and a fixed region for every boto3 client.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AcumaticaJiraConnectorTests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def core_logger_left_as_found():
    """A handler module loaded in-process routes the ``connector`` logger through its Powertools logger (no
    propagation to the root); later tests that read core logs with ``caplog`` need it as they found it."""
    import logging

    core = logging.getLogger("connector")
    state = (list(core.handlers), core.propagate, core.level)
    yield
    core.handlers[:], core.propagate, core.level = state[0], state[1], state[2]
