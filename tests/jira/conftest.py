"""Fixtures for the Jira client, the ADF builders, the signature checks and the Jira sandbox.

Official descriptions judge both sides: every REST exchange with the sandbox is checked against the vendored OpenAPI
description, and every ADF document against the official ADF JSON schema.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl

import pytest
from openapi_core import Config, OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connector.http import make_session
from connector.jira import JiraClient, jira_token_obtainer
from connector.tokens import RotatingTokens
from connector_local.jira_sandbox import ADF_SCHEMA_PATH, JiraSandbox, QuietRequestHandler, adf_validator
from tests.fakes import MemoryLock, MemorySecret

SPECS = Path(__file__).resolve().parents[2] / "specs"
SPEC_HOST = "https://your-domain.atlassian.net"


@pytest.fixture(scope="session")
def assert_valid_adf() -> Callable[[Any], None]:
    """Official ADF schema (draft-04), via the sandbox's type-dispatching validator: same verdicts, much faster."""
    assert ADF_SCHEMA_PATH == SPECS / "adf-schema-v1-full.json"
    validator = adf_validator()

    def check(document: Any) -> None:
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
                    for e in validator.iter_errors(document)]
        assert not problems, problems

    return check


@pytest.fixture(scope="session")
def jira_openapi() -> OpenAPI:
    spec = json.loads((SPECS / "jira-platform-openapi.json").read_text(encoding="utf-8"))
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="session")
def assert_conforms_to_openapi(jira_openapi: OpenAPI) -> Callable[[list[dict[str, Any]]], int]:
    """Validate recorded exchanges: every request, and every non-empty response whose status the spec documents."""

    def check(exchanges: list[dict[str, Any]]) -> int:
        for exchange in exchanges:
            content_type = (exchange["content_type"] or "application/json").split(";")[0]
            request = MockRequest(
                SPEC_HOST, exchange["method"].lower(), exchange["path"], args=dict(parse_qsl(exchange["query"])),
                headers={"Authorization": "Bearer token"}, data=exchange["body"] or None, content_type=content_type,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # openapi-core cannot evaluate the OAuth2 scheme
                jira_openapi.validate_request(request)
                if not exchange["response_body"]:
                    continue
                response = MockResponse(exchange["response_body"], status_code=exchange["status"])
                try:
                    jira_openapi.validate_response(request, response)
                except ResponseNotFound:
                    continue  # a status the operation does not document (410, 429, injected faults)
        return len(exchanges)

    return check


@pytest.fixture
def sandbox(assert_conforms_to_openapi: Callable[[list[dict[str, Any]]], int]) -> Iterator[JiraSandbox]:
    """A running sandbox; when the test ends, all its REST traffic is checked against the OpenAPI description."""
    with JiraSandbox() as running:
        yield running
        assert_conforms_to_openapi(running.exchanges())


@pytest.fixture
def lagging_sandbox(assert_conforms_to_openapi: Callable[[list[dict[str, Any]]], int]) -> Iterator[JiraSandbox]:
    """Search shows new and edited issues only 30 s (sandbox clock) after the write."""
    with JiraSandbox(search_lag_seconds=30) as running:
        yield running
        assert_conforms_to_openapi(running.exchanges())


@pytest.fixture
def make_client() -> Callable[..., tuple[JiraClient, RotatingTokens, MemorySecret]]:
    """A JiraClient on a sandbox with its own RotatingTokens over an in-memory secret and lock."""

    def build(sandbox: JiraSandbox, *, secret: MemorySecret | None = None, lock: MemoryLock | None = None,
              retries: int = 0, **client_options: Any) -> tuple[JiraClient, RotatingTokens, MemorySecret]:
        session = make_session(total=retries, backoff_factor=0)
        store = secret or MemorySecret({"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
                                        "refresh_token": sandbox.issue_refresh_token(), "cloud_id": sandbox.cloud_id})
        tokens = RotatingTokens(name="jira", secrets=store, lock=lock or MemoryLock(),
                                obtain=jira_token_obtainer(sandbox.url, session), poll_seconds=0.02)
        options = {"project_key": sandbox.project_key, "issue_type": "Task",
                   "external_id_field": sandbox.external_id_field, **client_options}
        client = JiraClient(api_url=sandbox.url, cloud_id=sandbox.cloud_id, tokens=tokens, session=session, **options)
        return client, tokens, store

    return build


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records deliveries and answers the statuses it is told to."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=QuietRequestHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/jira/webhook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append({"headers": dict(request.headers), "body": request.get_data()})
            status = self.answers.pop(0) if self.answers else 204
        return Response(status=status)(environ, start_response)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running
