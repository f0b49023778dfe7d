"""Fixtures for the Acumatica client and sandbox: a running sandbox, a client wired to it through the real token
machinery (in-memory secret and lock), and validators built from the vendored OpenAPI description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from connector.acumatica import AcumaticaClient, acumatica_token_obtainer
from connector.http import make_session
from connector.tokens import RotatingTokens
from connector_local.acumatica_sandbox import AcumaticaSandbox
from tests.fakes import MemoryLock, MemorySecret

SPEC_PATH = Path(__file__).resolve().parents[2] / "specs" / "acumatica-default-openapi.json"
VERSION = "24.200.001"
PASSWORD = "s3cret-Pa55word!"
CLIENT_SECRET = "client-Secret-9f8e7d"


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="session")
def schema_validator(spec: dict[str, Any]) -> Callable[[str], OAS30Validator]:
    """``schema_validator("Bill")`` validates an instance against ``#/components/schemas/Bill`` (OpenAPI 3.0 rules)."""
    registry = Registry().with_resource("urn:acumatica", Resource.from_contents(spec, default_specification=DRAFT4))

    def build(name: str) -> OAS30Validator:
        return OAS30Validator({"$ref": f"urn:acumatica#/components/schemas/{name}"}, registry=registry,
                              format_checker=oas30_format_checker)

    return build


@pytest.fixture
def sandbox() -> Iterator[AcumaticaSandbox]:
    with AcumaticaSandbox(versions=(VERSION,), client_secret=CLIENT_SECRET, users={"admin": PASSWORD}) as running:
        yield running


@pytest.fixture
def session():
    """Retries like production, with near-zero backoff so fault tests stay fast."""
    return make_session(total=2, backoff_factor=0.01, backoff_max=0.05)


@pytest.fixture
def secret(sandbox: AcumaticaSandbox) -> MemorySecret:
    return MemorySecret({"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET,
                         "username": "admin", "password": PASSWORD})


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sandbox: AcumaticaSandbox, secret: MemorySecret, session, sleeps: list[float]):
    def build(**overrides: Any) -> AcumaticaClient:
        base_url = overrides.pop("base_url", sandbox.url)
        tokens = RotatingTokens(name="acumatica", secrets=overrides.pop("secrets", secret), lock=MemoryLock(),
                                obtain=acumatica_token_obtainer(base_url, session))
        options = {"base_url": base_url, "endpoint_version": VERSION, "tokens": tokens, "session": session,
                   "sleep": sleeps.append, **overrides}
        return AcumaticaClient(**options)

    return build


@pytest.fixture
def client(make_client) -> AcumaticaClient:
    return make_client()
