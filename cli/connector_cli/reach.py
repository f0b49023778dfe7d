"""Whether the hosts the connector talks to answer, and, when one does not, which setting points at it and why.

The functions' clients are built for a Lambda: long timeouts, several retries. Run from a prompt against a host that
does not answer (the everyday case: a ``.local.env`` left from a stopped ``connector local``) they kept a person
waiting for most of a minute and then blamed the configuration. So the command-line tool runs the same clients with
the short timeouts of ``connector.timings`` (``OPERATOR_*``): HTTP through ``operator_session``, AWS through
``use_operator_timeouts``. And when a call gets no answer, ``unreachable`` names the host, the setting that points at
it (``ACUMATICA_URL (AcumaticaUrl) https://...``) and the cause, found in the exception chain, never guessed from a
message: a refused connection, a connection never accepted, a name that does not resolve, a TLS failure, a host
that accepted but did not answer.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Mapping
from urllib.parse import urlsplit

from connector import timings, urls
from connector.http import RetryGates, make_session
from connector.wiring import Wiring

if TYPE_CHECKING:
    from connector.table_versions import InEffect

URL_SETTINGS = (
    ("ACUMATICA_URL", "AcumaticaUrl", ""),
    ("JIRA_API_URL", "JiraApiUrl", "https://api.atlassian.com"),
    ("JIRA_AUTH_URL", "JiraAuthUrl", "https://auth.atlassian.com"),
    ("AWS_ENDPOINT_URL", None, ""),
)
"""The settings that name a host: environment variable, template parameter (none: AWS's endpoint is the machine's
own business, set only for the local stack), and the value used when it is unset."""


@dataclass(frozen=True)
class Endpoint:
    """A host the connector calls, and every setting that points at it."""

    url: str
    settings: tuple[tuple[str, str | None], ...]

    @property
    def origin(self) -> str:
        return _origin(self.url)

    @property
    def label(self) -> str:
        """``ACUMATICA_URL (AcumaticaUrl) https://acme.acumatica.com``: what to look at, and where it is set."""
        names = ", ".join(f"{variable} ({parameter})" if parameter else variable for variable, parameter in self.settings)
        return f"{names} {self.url}"


def endpoints(env: Mapping[str, str]) -> list[Endpoint]:
    """The hosts the environment points at, one per origin (a sandbox serving both Jira URLs is one host)."""
    found: dict[str, Endpoint] = {}
    for variable, parameter, default in URL_SETTINGS:
        url = (env.get(variable) or default).rstrip("/")
        if not url:
            continue
        origin = _origin(url)
        known = found.get(origin)
        found[origin] = Endpoint(known.url if known else url,
                                 (*(known.settings if known else ()), (variable, parameter)))
    return list(found.values())


def endpoint_for(url: str, env: Mapping[str, str]) -> Endpoint:
    """The endpoint a failing request went to (one the settings do not name stands for itself)."""
    origin = _origin(url)
    return next((endpoint for endpoint in endpoints(env) if endpoint.origin == origin),
                Endpoint(origin, ()))


@dataclass(frozen=True)
class Unreachable:
    """Why a host gave no answer, in words, with what to do about it."""

    endpoint: Endpoint
    cause: str
    """``refused``, ``no-connection``, ``no-name``, ``tls``, ``no-answer`` or ``dropped``."""
    detail: str

    @property
    def message(self) -> str:
        return f"{self.endpoint.label}: {self.detail}"

    @property
    def fix(self) -> str:
        setting = " or ".join(variable for variable, _ in self.endpoint.settings) or "the URL"
        host = urlsplit(self.endpoint.url).hostname or self.endpoint.url
        if self.cause == "refused":
            return (f"check {setting}; if it points at a `connector local` that has stopped, start it again and load "
                    "the environment file it writes (its ports change at every start)")
        if self.cause == "no-name":
            return f"the name {host} does not resolve: check {setting} for a typo, and this machine's DNS"
        if self.cause == "tls":
            return f"check that {setting} names the right scheme and host, and that {host}'s certificate is valid"
        if self.cause == "no-answer":
            return f"{host} accepted the connection but did not answer: check that the service behind {setting} is up"
        if self.cause == "dropped":
            return f"{host} closed the connection: check {setting} and whatever proxy stands in front of it"
        return (f"check {setting}, that {host} is up, and the network between here and it (firewall, VPN, proxy); "
                "a `connector local` that has stopped leaves its addresses behind in the environment file")


def unreachable(error: BaseException, env: Mapping[str, str]) -> Unreachable | None:
    """The host that gave no answer, if that is what ``error`` (or anything in its chain) comes down to."""
    url = None
    cause: tuple[str, str] | None = None
    for link in _chain(error):
        url = url or _url_of(link)
        cause = cause or _cause_of(link)
    if cause is None or url is None:
        return None
    return Unreachable(endpoint_for(url, env), *cause)


def probe(endpoint: Endpoint) -> int:
    """One plain GET of the endpoint's URL, unretried, with the tool's timeouts: any HTTP answer means the host
    answers (its status is returned); no answer raises ``HostUnreachable``."""
    import requests

    try:
        with requests.get(endpoint.url, timeout=(timings.OPERATOR_CONNECT_TIMEOUT, timings.OPERATOR_READ_TIMEOUT),
                          allow_redirects=False, stream=True) as answer:
            return answer.status_code
    except requests.RequestException as error:
        found = unreachable(error, {})
        raise HostUnreachable(Unreachable(endpoint, *(
            (found.cause, found.detail) if found else ("other", f"no answer ({type(error).__name__})")))) from None


class HostUnreachable(Exception):
    """A host gave no answer; carries the explanation."""

    def __init__(self, why: Unreachable) -> None:
        super().__init__(why.message)
        self.why = why


def operator_session(gates=None):
    """The functions' HTTP session (retry rules, ``Retry-After`` gates) with the tool's short timeouts: a host that
    does not answer costs seconds, not minutes."""
    return make_session(gates=gates or RetryGates(longest_wait=timings.OPERATOR_LONGEST_WAIT_SECONDS),
                        connect_retries=timings.OPERATOR_CONNECT_RETRIES, read_retries=0,
                        max_timeout=(timings.OPERATOR_CONNECT_TIMEOUT, timings.OPERATOR_READ_TIMEOUT))


class use_operator_timeouts:
    """While active, every boto3 client made through the default session (the wiring's store, queue and secrets,
    ``--stack``'s CloudFormation) has the tool's connect and read timeouts and attempts; the session in place before
    is put back afterwards, so functions sharing the process (the tests, ``connector local``) keep theirs."""

    def __enter__(self) -> use_operator_timeouts:
        import boto3
        import botocore.session
        from botocore.config import Config

        self._previous = boto3.DEFAULT_SESSION
        core = botocore.session.get_session()
        core.set_default_client_config(Config(
            connect_timeout=timings.OPERATOR_CONNECT_TIMEOUT, read_timeout=timings.OPERATOR_AWS_READ_TIMEOUT,
            retries={"mode": "standard", "total_max_attempts": timings.OPERATOR_AWS_ATTEMPTS}))
        boto3.setup_default_session(botocore_session=core)
        return self

    def __exit__(self, *exc_info: object) -> None:
        import boto3

        boto3.DEFAULT_SESSION = self._previous


def _origin(url: str) -> str:
    """``scheme://host:port`` by the connector's one rule of what is the same server (``urls.origin``)."""
    return "{}://{}:{}".format(*urls.origin(url))


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything it wraps: causes, contexts (kept even under ``raise ... from None``), urllib3's
    ``reason`` and botocore's ``kwargs['error']``."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        wrapped = [link.__cause__, link.__context__, getattr(link, "reason", None),
                   (getattr(link, "kwargs", None) or {}).get("error") if isinstance(getattr(link, "kwargs", None), dict)
                   else None, *link.args]
        pending.extend(item for item in wrapped if isinstance(item, BaseException))


def _url_of(link: BaseException) -> str | None:
    request = getattr(link, "request", None)
    if getattr(request, "url", None):
        return str(request.url)
    kwargs = getattr(link, "kwargs", None)
    if isinstance(kwargs, dict) and kwargs.get("endpoint_url"):
        return str(kwargs["endpoint_url"])
    return None


def _cause_of(link: BaseException) -> tuple[str, str] | None:
    import requests
    import urllib3.exceptions as u3

    connect, read = timings.OPERATOR_CONNECT_TIMEOUT, timings.OPERATOR_READ_TIMEOUT
    if isinstance(link, (u3.NameResolutionError, socket.gaierror)):
        return "no-name", "the host name does not resolve"
    if isinstance(link, ConnectionRefusedError):
        return "refused", "connection refused (nothing listens on that port)"
    if isinstance(link, (requests.exceptions.SSLError, u3.SSLError)):
        return "tls", "the TLS handshake failed"
    if isinstance(link, (requests.ConnectTimeout, u3.ConnectTimeoutError)) and not isinstance(
            link, u3.NewConnectionError):
        return "no-connection", f"no answer within {connect:g} s (the connection was never accepted)"
    if isinstance(link, (requests.ReadTimeout, u3.ReadTimeoutError)):
        return "no-answer", f"connected, but no answer within {read:g} s"
    if isinstance(link, (ConnectionResetError, u3.ProtocolError)):
        return "dropped", "the connection was closed before an answer"
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - botocore ships with the tool
        return None
    if isinstance(link, boto.ConnectTimeoutError):
        return "no-connection", f"no answer within {connect:g} s (the connection was never accepted)"
    if isinstance(link, boto.ReadTimeoutError):
        return "no-answer", f"connected, but no answer within {timings.OPERATOR_AWS_READ_TIMEOUT:g} s"
    return None



class OperatorWiring(Wiring):
    """The functions' wiring, whose HTTP clients (Acumatica, Jira, both token endpoints) use ``operator_session``.

    A function asks it for the tables in effect from one thread; ``ping``'s checks ask from several at once, and each
    that asked before the first read ended read the tables again (the parameter-tables secret and the version
    pointer). Here the first reads and the others wait for its answer: one read per command."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._tables_read = threading.Lock()

    def in_effect(self) -> InEffect:
        with self._tables_read:
            return super().in_effect()

    @cached_property
    def gates(self) -> RetryGates:
        return RetryGates(longest_wait=timings.OPERATOR_LONGEST_WAIT_SECONDS)

    @cached_property
    def http(self):
        return operator_session(self.gates)
