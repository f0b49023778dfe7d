"""Webhook authenticity: X-Hub-Signature over the raw body, and the HS256 JWT of dynamic-webhook deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from connector.errors import Rejected
from connector.signatures import sign_hub, verify_dynamic_webhook_jwt, verify_hub_signature

SECRET = "hub-secret-4f1d2c9a8b7e6d5c4b3a29180716f5e4"
CLIENT_SECRET = "client-secret-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
BODY = b'{"webhookEvent":"jira:issue_updated","issue":{"key":"AP-1"}}'


def rejection(call) -> Rejected:
    with pytest.raises(Rejected) as caught:
        call()
    assert caught.value.status == 401
    return caught.value


def test_sign_hub_is_hmac_sha256_hex_of_the_raw_body():
    assert sign_hub(SECRET, BODY) == "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def test_valid_hub_signature_is_accepted_in_any_hex_case():
    verify_hub_signature(SECRET, BODY, sign_hub(SECRET, BODY))
    verify_hub_signature(SECRET, BODY, sign_hub(SECRET, BODY).upper().replace("SHA256", "sha256"))


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_hub_signature_is_rejected(header):
    assert "missing" in str(rejection(lambda: verify_hub_signature(SECRET, BODY, header)))


@pytest.mark.parametrize("header", [
    "abc123",                                  # no method
    "sha1=" + "a" * 40,                        # another method
    "sha256=",                                 # no digest
    "sha256=" + "z" * 64,                      # not hex
    "sha256=" + "a" * 63,                      # too short
    "sha256=" + "a" * 64 + ",sha256=" + "b" * 64,  # two values
])
def test_malformed_hub_signature_is_rejected(header):
    assert "malformed" in str(rejection(lambda: verify_hub_signature(SECRET, BODY, header)))


def test_hub_signature_made_with_another_secret_is_rejected():
    forged = sign_hub("another-secret", BODY)
    assert "does not match" in str(rejection(lambda: verify_hub_signature(SECRET, BODY, forged)))


def test_tampered_body_fails_the_hub_signature():
    header = sign_hub(SECRET, BODY)
    tampered = BODY.replace(b"AP-1", b"AP-2")
    rejection(lambda: verify_hub_signature(SECRET, tampered, header))
    reserialised = json.dumps(json.loads(BODY)).encode()  # same JSON, other bytes
    rejection(lambda: verify_hub_signature(SECRET, reserialised, header))


def test_unconfigured_secret_trusts_nothing():
    rejection(lambda: verify_hub_signature("", BODY, sign_hub("", BODY)))


def test_rejection_reasons_never_contain_the_secret_or_a_digest():
    expected = sign_hub(SECRET, BODY)
    for header in (None, "sha1=xx", sign_hub("other", BODY)):
        message = str(rejection(lambda: verify_hub_signature(SECRET, BODY, header)))
        assert SECRET not in message and expected.split("=")[1] not in message


def token(claims: dict, secret: str = CLIENT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def fresh_claims(**extra) -> dict:
    now = int(time.time())
    return {"iss": "client-id", "aud": "client-id", "iat": now, "exp": now + 180, **extra}


def test_valid_dynamic_webhook_jwt_returns_its_claims():
    claims = verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {token(fresh_claims(sub='acct'))}")
    assert claims["sub"] == "acct"


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", "Token a.b.c"])
def test_missing_or_malformed_authorization_is_rejected(header):
    rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, header))


def test_jwt_signed_with_another_secret_is_rejected():
    forged = token(fresh_claims(), secret="not-the-client-secret-0123456789abcdef")
    assert "signature" in str(rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {forged}")))


def test_tampered_jwt_payload_is_rejected():
    header, _, signature = token(fresh_claims(sub="acct")).split(".")
    payload = base64.urlsafe_b64encode(json.dumps(fresh_claims(sub="attacker")).encode()).decode().rstrip("=")
    rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {header}.{payload}.{signature}"))


def test_expired_jwt_is_rejected_beyond_the_leeway():
    now = int(time.time())
    stale = token({"iat": now - 600, "exp": now - 120})
    assert "expired" in str(rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {stale}", leeway=60)))
    verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {stale}", leeway=300)


def test_jwt_without_expiry_is_rejected_because_it_would_never_expire():
    assert "exp" in str(rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {token({'iss': 'x'})}")))


def test_unsigned_or_asymmetric_jwt_is_rejected():
    unsigned = jwt.encode(fresh_claims(), None, algorithm="none")
    rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {unsigned}"))
    hs512 = token(fresh_claims(), secret=CLIENT_SECRET * 2, algorithm="HS512")
    rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {hs512}"))


def test_jwt_rejection_reasons_never_contain_the_client_secret():
    forged = token(fresh_claims(), secret="wrong-secret-0123456789abcdef0123456789")
    for header in (None, f"Bearer {forged}", "Bearer a.b.c"):
        assert CLIENT_SECRET not in str(rejection(lambda: verify_dynamic_webhook_jwt(CLIENT_SECRET, header)))
