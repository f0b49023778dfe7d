"""`connector connect`: new credentials are proven before they are stored, and stored under the token lock.

A running stack reads the same secrets on every token refresh, so a wrong client secret or password written first and
tested afterwards would break it. Here the candidate secret is built apart from the stored one, a token is obtained
with exactly the new values (never a stored refresh token, which would "prove" nothing), and only then is the secret
written, through ``RotatingTokens.update_secret``: under the lease every token refresher takes, confirmed before the
write, so it cannot interleave with a rotation.

Jira's consent is two steps (URL, then code). The first stores only a pending record (client id and secret, the OAuth
``state``) beside the live values, which the running stack ignores; the second checks ``state``
in constant time, exchanges the code, resolves the site's cloudId, and replaces the live values at once.
"""

from __future__ import annotations

import getpass
import hmac
import secrets as random
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import parse_qs, urlencode, urlparse

from connector.errors import ConfigurationError

PROMPT = "\0prompt"
"""The value of a secret option given without a value: ask for it without echo."""
JIRA_SCOPES = "read:jira-work write:jira-work manage:jira-webhook read:jira-user offline_access"
"""``read:jira-user`` reads a person's groups, which ``DecisionAuthority`` limits decisions by (docs/decisions.md)."""
TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")
SECRET_OPTIONS = ("client_secret", "password", "push_secret", "webhook_secret")
"""Secret options, in the order in which ``-`` reads them from standard input (one line each)."""
CHOSEN_SECRETS = {"push_secret": "acumatica", "webhook_secret": "jira"}
"""Secrets the operator chooses (not issued by Acumatica or Jira), and the system whose secret holds them."""
MIN_CHOSEN_SECRET_BYTES = 32
"""A chosen secret is all that authenticates a delivery: at least 256 bits, as ``--generate`` makes them."""


def refuse_literal(option: str) -> Callable[[str], str]:
    """The argparse ``type`` of a secret option: only ``-`` may follow it; a literal value would sit in ``ps`` and
    the shell's history, so it is refused with the safe spellings (exit 2, as every argument error)."""
    import argparse

    def check(text: str) -> str:
        if text in ("-", PROMPT):  # argparse passes the bare flag's ``const`` through here too
            return text
        raise argparse.ArgumentTypeError(
            f"a secret is never given on the command line (ps, shell history): write {option} alone to be asked "
            f"for it, or {option} - to read it from standard input")

    return check


def secret_value(name: str, value: str | None, *, stdin=None) -> str | None:
    """``-`` reads the value from standard input, a bare flag prompts for it; never echoed, never in ``ps``."""
    if value is None:
        return None
    if value == "-":
        line = (stdin or sys.stdin).readline().rstrip("\r\n")
        if not line:
            raise ConfigurationError(f"--{name} -: standard input was empty")
        return line
    if value == PROMPT:
        return getpass.getpass(f"{name}: ")
    raise ConfigurationError(f"--{name}: a secret is read from a prompt or standard input only")


def chosen_secrets(given: Mapping[str, str], generate: Sequence[str], clear: Sequence[str],
                   system: str) -> tuple[dict[str, str], dict[str, str]]:
    """The operator-chosen secrets to store for ``system``: given (at least ``MIN_CHOSEN_SECRET_BYTES``), generated
    (``--generate``: 32 random bytes, URL-safe) or cleared (``--clear``: empty, so deliveries signed with the old
    one are refused from then on). Returns them and the generated ones, which the operator must copy to the sender."""
    stored: dict[str, str] = {}
    generated: dict[str, str] = {}
    for option in (*generate, *clear):
        name = option.replace("-", "_")
        if CHOSEN_SECRETS.get(name) != system:
            raise ConfigurationError(f"--generate/--clear {option}: not a secret of connect {system} (it takes "
                                     + ", ".join(n.replace("_", "-") for n, s in CHOSEN_SECRETS.items() if s == system)
                                     + ")")
        if name in given:
            raise ConfigurationError(f"--{option} is given and also generated or cleared: choose one")
    if set(generate) & set(clear):
        raise ConfigurationError("a secret cannot be both generated and cleared")
    for name, owner in CHOSEN_SECRETS.items():
        if owner == system and name in given:
            if len(given[name].encode("utf-8")) < MIN_CHOSEN_SECRET_BYTES:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be at least {MIN_CHOSEN_SECRET_BYTES} "
                                         f"bytes (it alone authenticates deliveries); or use --generate "
                                         f"{name.replace('_', '-')}")
            stored[name] = given[name]
    for option in generate:
        stored[option.replace("-", "_")] = generated[option] = random.token_urlsafe(MIN_CHOSEN_SECRET_BYTES)
    for option in clear:
        stored[option.replace("-", "_")] = ""
    return stored, generated


def connect_acumatica(wiring: Any, given: Mapping[str, str], obtain: Callable[[Mapping[str, Any]], Mapping[str, Any]]
                      ) -> str:
    """Prove and store Acumatica credentials; returns what to tell the user. Raises and stores nothing on refusal.

    A refusal names what to correct in the values just given: "run connector connect acumatica" would send the
    person back to the command that was refused."""
    if not given:
        raise ConfigurationError("connect acumatica needs something to store: --client-id, --client-secret, "
                                 "--username, --password, --push-secret (or --generate/--clear push-secret)")
    changed = sorted(given.keys() & {"client_id", "client_secret", "username", "password"})
    if not changed:  # read again under the lease: a rotation since any earlier read is kept
        wiring.acumatica_tokens.update_secret(lambda current: {**current, **given})
        return "Acumatica secret updated (no credential changed, so none was re-tested)."
    candidate = {**wiring.acumatica_secret.read(), **given}
    # The token must come from exactly the new values: a stored refresh token would "prove" a wrong password.
    # Only a new client alone, with no password to sign in with, is proven by the refresh grant (which
    # Acumatica answers invalid_client for a wrong client secret).
    signs_in = bool(candidate.get("username") and candidate.get("password"))
    dropped = TOKEN_FIELDS if signs_in else ("access_token", "expires_at")
    candidate = {k: v for k, v in candidate.items() if k not in dropped}
    issued = _proven(obtain, candidate, changed)
    candidate.update({k: v for k, v in issued.items() if v is not None})
    wiring.acumatica_tokens.update_secret(lambda current: candidate)  # a new grant replaces the stored one whole
    wiring.acumatica.check_endpoint_version()
    return (f"Acumatica connected: a token was issued for the new credentials and stored; "
            f"Default/{wiring.settings.acumatica_endpoint_version} is served.")


def _proven(obtain: Callable[[Mapping[str, Any]], Mapping[str, Any]], candidate: Mapping[str, Any],
            changed: Sequence[str]) -> Mapping[str, Any]:
    """A token for exactly the new values, or a ``ConfigurationError`` naming what to check (nothing is stored)."""
    from connector.acumatica import RECONNECT_HINT
    from connector.errors import ReconnectNeeded

    try:
        return obtain(candidate)
    except (ReconnectNeeded, ConfigurationError) as refused:
        reason = str(refused).replace("; " + RECONNECT_HINT, "")
        options = ", ".join(f"--{name.replace('_', '-')}" for name in changed)
        raise ConfigurationError(f"Acumatica refused the values given ({reason}); nothing was stored: check "
                                 f"{options} against the connected application (SM303010) and its API user, then "
                                 "give them again") from None


def store_webhook_secret(wiring: Any, webhook_secret: str) -> None:
    """The admin webhook's secret is chosen by the person, not issued by Jira: nothing to prove, it is live at once."""
    wiring.jira_tokens.update_secret(lambda current: {**current, "webhook_secret": webhook_secret})


def consent_url(wiring: Any, given: Mapping[str, str], redirect_uri: str) -> str:
    """Step one: remember the pending client and a fresh ``state``; return the URL the person opens."""
    current = wiring.jira_secret.read()
    client_id = given.get("client_id") or current.get("client_id")
    client_secret = given.get("client_secret") or current.get("client_secret")
    if not client_id or not client_secret:
        raise ConfigurationError("connect jira needs --client-id and --client-secret (the OAuth 2.0 app's)")
    state = random.token_hex(24)  # never starts with "-", which argparse would take for an option in --state
    pending = {"client_id": client_id, "client_secret": client_secret, "state": state, "redirect_uri": redirect_uri}
    wiring.jira_tokens.update_secret(lambda current: {**current, "pending_connect": pending})
    query = urlencode({"audience": "api.atlassian.com", "client_id": client_id, "scope": JIRA_SCOPES,
                       "redirect_uri": redirect_uri, "state": state, "response_type": "code", "prompt": "consent"})
    return f"{wiring.settings.jira_auth_url}/authorize?{query}"


def finish_jira(wiring: Any, code: str, state: str, site: str, exchange: Callable[..., Mapping[str, Any]],
                list_sites: Callable[..., Sequence[Mapping[str, Any]]],
                choose_site: Callable[[Sequence[Mapping[str, Any]]], str], session: Any) -> str:
    """Step two: check ``state``, exchange the code, find the site's cloudId, then replace the live values at once.

    With no site named (``--site`` or ``JiraSiteUrl``) and a grant that reaches several, ``choose_site`` asks the
    person: the connector must never guess which team's Jira to write to."""
    from connector.jira import site_cloud_id

    current = wiring.jira_secret.read()
    pending = current.get("pending_connect") or {}
    if not pending.get("state"):
        raise ConfigurationError("no consent is pending: run `connector connect jira` without --code first")
    if not hmac.compare_digest(str(pending["state"]), state or ""):
        raise ConfigurationError("the OAuth state does not match the consent this command started; the redirect "
                                 "was not ours (or a newer consent replaced it): start again")
    tokens = exchange(wiring.settings.jira_auth_url, pending["client_id"], pending["client_secret"], code,
                      pending["redirect_uri"], session)
    sites = list_sites(wiring.settings.jira_api_url, tokens["access_token"], session)
    chosen = site or (choose_site(sites) if len(sites) > 1 else "")
    cloud_id = site_cloud_id(sites, chosen)
    granted = {"client_id": pending["client_id"], "client_secret": pending["client_secret"], "cloud_id": cloud_id,
               **{k: tokens[k] for k in TOKEN_FIELDS if tokens.get(k) is not None}}
    wiring.jira_tokens.update_secret(
        lambda now: {**{k: v for k, v in now.items() if k != "pending_connect"}, **granted})
    told = f"Jira connected: cloudId {cloud_id}{f' for {chosen}' if chosen else ''}; refresh token stored."
    if chosen and not wiring.settings.jira_site_url:
        told += f" Set the JiraSiteUrl parameter to {chosen} so that issue links point there."
    return told


def catch_redirect(redirect_uri: str, timeout_seconds: float = 300.0) -> tuple[str, str]:
    """Serve the redirect URI on 127.0.0.1 until the consent redirect arrives; returns its ``code`` and ``state``."""
    target = urlparse(redirect_uri)
    if target.hostname not in ("localhost", "127.0.0.1") or not target.port:
        raise ConfigurationError("--listen needs a --redirect-uri on localhost with a port, "
                                 "e.g. http://localhost:8765/callback (registered in the Jira app)")
    caught: dict[str, str] = {}

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != target.path or "code" not in query:
                self.send_error(404)
                return
            caught.update(code=query["code"], state=query.get("state", ""))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"The connector received the consent; you can close this tab.")

        def log_message(self, *args: Any) -> None:  # the code is a credential: never log the request line
            pass

    server = HTTPServer(("127.0.0.1", target.port), Callback)
    server.timeout = 1.0
    deadline = time.monotonic() + timeout_seconds
    try:
        while not caught and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if not caught:
        raise ConfigurationError(f"no consent redirect reached {redirect_uri} within {int(timeout_seconds)} s")
    return caught["code"], caught["state"]
