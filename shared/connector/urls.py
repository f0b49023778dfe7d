"""Which base URLs the connector may send credentials to, and which follow-up URLs it may send a token to.

Pure rules, no I/O, used when configuration is parsed (``connector.config``) and when an answer names another URL
(an action's ``Location``). Why they exist:
- a base URL is where client secrets, passwords and bearer tokens go, so it must be ``https``: over plain ``http``
  anyone on the path reads them. The one exception is the loopback interface (``127.0.0.1``, ``localhost``,
  ``::1``), which never leaves the machine: the local stack and the tests serve their sandboxes there;
- a base URL must not carry user information (``https://user:pass@host``): it would put a credential in
  configuration, logs and CloudFormation parameters, where nothing else the connector keeps is;
- a URL an answer points to gets the bearer token only when it keeps the scheme, host and port of the instance:
  anything else is another server (or a downgrade to ``http``), which must never see the token.
"""

from __future__ import annotations

import string
from urllib.parse import urlsplit

URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
"""What RFC 3986 lets a URL be written in (unreserved, reserved and percent escapes): an international host name is
written in punycode, anything else percent-escaped. The template's patterns allow the same, so the longest value
is also the fewest bytes of a function's 4 KB environment (no character JSON must escape)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORTS = {"https": 443, "http": 80}


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a base URL the connector sends credentials to; ``None`` when it can."""
    if not set(url) <= URL_CHARACTERS:
        return ("must be written in URL characters (letters, digits and -._~:/[]@!$&'()*+,;=%; punycode for an "
                "international host name)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it is the check: an unreadable port raises ValueError
    except ValueError as error:
        return f"is not a URL ({error})"
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return "must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password (credentials belong in Secrets Manager)"
    if parts.query or parts.fragment:
        return "must not carry a query or fragment"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return ("must be https: credentials and tokens are sent there (plain http is accepted only on the loopback "
                "interface, 127.0.0.1, localhost or ::1, for local runs)")
    return None


def origin(url: str) -> tuple[str, str, int]:
    """Scheme, host (lower case) and port (the scheme's default when none is written) of ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` keeps the scheme, host and port of ``base_url`` (``https://h`` and ``https://h:443`` agree)."""
    try:
        return origin(url) == origin(base_url)
    except ValueError:  # an unreadable port: not provably the same server
        return False


def host_of(url: str) -> str:
    """The host (and port, when written) of ``url``, for messages: never the path, query or user information."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "an unreadable address"
    host = parts.hostname or "an unnamed host"
    return f"{host}:{port}" if port else host


def shown(url: str, limit: int = 120) -> str:
    """``url`` as a message may show it: any user information replaced by ``***`` (it is a credential)."""
    scheme, separator, rest = url.partition("://")
    if separator:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            authority = "***@" + authority.rpartition("@")[2]
        url = f"{scheme}://{authority}{slash}{path}"
    return repr(url if len(url) <= limit else url[:limit] + "…")
