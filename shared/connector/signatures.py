"""Authenticity checks for Jira webhook deliveries. Pure functions: no I/O, no logging.

Two kinds of delivery reach ``POST /jira/webhook``:
- admin webhooks with a secret carry ``X-Hub-Signature: sha256=<hex>``, an HMAC-SHA256 of the *raw* body (WebSub
  style). Any re-serialisation of the JSON changes the bytes, so the check runs before parsing;
- dynamic webhooks registered by an OAuth 2.0 app carry ``Authorization: Bearer <JWT>``, HS256-signed with the
  app's client secret. The JWT does not cover the body, so an expiry is required and capped: a token seen once
  authenticates forged bodies until it expires. Deliveries are deduplicated on what the body itself names (issue id
  and changelog id, ``connector.webhooks``), never on the unsigned ``X-Atlassian-Webhook-Identifier``.

Every failure is ``Rejected(401, reason)``; reasons name what was wrong, never a secret or a digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

from .errors import Rejected

HUB_METHOD = "sha256"
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def sign_hub(secret: str, raw_body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``raw_body``: ``sha256=<hex>``."""
    return f"{HUB_METHOD}={hmac.new(secret.encode('utf-8'), raw_body, hashlib.sha256).hexdigest()}"


def verify_hub_signature(secret: str, raw_body: bytes, header_value: str | None) -> None:
    """Accept only a well-formed ``sha256=<hex>`` matching the raw body; constant-time comparison."""
    if not secret:
        raise Rejected(401, "no webhook secret is configured, so no signature can be trusted")
    if not header_value or not header_value.strip():
        raise Rejected(401, "missing X-Hub-Signature header")
    method, separator, digest = header_value.strip().partition("=")
    if not separator or method.strip().lower() != HUB_METHOD:
        raise Rejected(401, "malformed X-Hub-Signature: expected sha256=<hex digest>")
    if not _HEX_DIGEST.fullmatch(digest.strip()):
        raise Rejected(401, "malformed X-Hub-Signature: the digest is not 64 hexadecimal characters")
    expected = sign_hub(secret, raw_body).partition("=")[2]
    if not hmac.compare_digest(expected.encode("ascii"), digest.strip().lower().encode("ascii")):
        raise Rejected(401, "X-Hub-Signature does not match the body")


MAX_JWT_LIFETIME_SECONDS = 3600
"""A dynamic-webhook JWT whose ``exp`` lies further ahead than this is refused: the JWT does not cover the body, so
whoever holds one can sign any body with it until it expires (the sandbox's, like Jira's observed ones, live minutes)."""
JWT_LEEWAY_SECONDS = 30
"""Clock skew allowed between Jira and the Lambda for ``exp`` and ``iat``."""


def verify_dynamic_webhook_jwt(client_secret: str, authorization_header: str | None, *, cloud_id: str = "",
                               leeway: float = JWT_LEEWAY_SECONDS) -> dict[str, Any]:
    """Verify the ``Bearer`` JWT of a dynamic-webhook delivery and return its claims.

    HS256 only (``none`` and asymmetric algorithms are refused), signed with ``client_secret``; ``exp`` required and
    at most ``MAX_JWT_LIFETIME_SECONDS`` ahead; ``iat`` required and not in the future; ``nbf`` checked when present;
    all with ``leeway`` seconds of clock skew. ``context.cloudId``, where the token carries one, must be the
    connected site's ``cloud_id``: the same OAuth app consented on another site signs with the same secret. ``aud``
    and ``iss`` are not checked because Atlassian does not document what they contain (docs/security.md).
    """
    if not client_secret:
        raise Rejected(401, "no client secret is configured, so no webhook JWT can be trusted")
    if not authorization_header or not authorization_header.strip():
        raise Rejected(401, "missing Authorization header")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or token.count(".") != 2:
        raise Rejected(401, "malformed Authorization header: expected Bearer <JWT>")
    # Imported here, not at module level: PyJWT loads ``cryptography`` for its asymmetric algorithms (~40 ms of a
    # cold start), and only dynamic-webhook deliveries carry a JWT.
    import jwt

    try:
        claims = jwt.decode(token, client_secret, algorithms=["HS256"], leeway=leeway,
                            options={"require": ["exp", "iat"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise Rejected(401, "webhook JWT has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Rejected(401, f"webhook JWT lacks the {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise Rejected(401, "webhook JWT signature does not match") from None
    except jwt.InvalidAlgorithmError:
        raise Rejected(401, "webhook JWT is not signed with HS256") from None
    except jwt.ImmatureSignatureError:
        raise Rejected(401, "webhook JWT is issued in the future") from None
    except jwt.InvalidTokenError:
        raise Rejected(401, "webhook JWT is malformed or its claims are unreadable") from None
    # PyJWT checked exp and iat against the same clock (``ImmatureSignatureError`` for an iat ahead of it); it sets
    # no upper bound on exp, and converts a numeric string, which the comparison below cannot take.
    expires, issued = claims.get("exp"), claims.get("iat")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (expires, issued)):
        raise Rejected(401, "webhook JWT exp and iat must be numbers")
    if expires > time.time() + MAX_JWT_LIFETIME_SECONDS + leeway:
        raise Rejected(401, f"webhook JWT is valid for more than {MAX_JWT_LIFETIME_SECONDS // 60} minutes ahead")
    context = claims.get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise Rejected(401, "webhook JWT context is not an object")
        site = context.get("cloudId")
        if site is not None:
            if not isinstance(site, str) or not cloud_id:
                raise Rejected(401, "webhook JWT names a Jira site, and the connected site's cloud id is not known "
                                    "here yet: run `connector connect jira` or the maintenance function")
            if not hmac.compare_digest(site.encode(), cloud_id.encode()):
                raise Rejected(401, "webhook JWT was issued for another Jira site (context.cloudId)")
    return claims
