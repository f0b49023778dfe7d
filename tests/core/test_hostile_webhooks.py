"""Hostile and broken webhook input, as hypothesis properties: every delivery gets a verdict (a result, or a
``Rejected`` with a 4xx status), never a crash; only the exact signature of the exact body is accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import Rejected
from connector.signatures import sign_hub, verify_dynamic_webhook_jwt, verify_hub_signature
from connector.webhooks import accept_jira_delivery, accept_push

SECRET = "webhook-secret-value"
CLIENT_SECRET = "client-secret-value-of-at-least-32-bytes"
PUSH_SECRET = "push-secret-value"
FIELD = "customfield_10050"

keys = st.sampled_from(["issue", "fields", "status", "statusCategory", "key", "changelog", "items", "webhookEvent",
                        FIELD, "Id", "Inserted", "Deleted", "Query", "CompanyId", "name", "id", "toString"])
jira_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.just("done") | st.just("Bill:Bill:000123"),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys | st.text(max_size=8), children,
                                                                      max_size=5),
    max_leaves=25,
)
hostile = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def deliver(body: bytes, headers: dict[str, str]):
    return accept_jira_delivery(body, headers, webhook_secret=SECRET, client_secret=CLIENT_SECRET,
                                external_id_field=FIELD, resolved_statuses=(), correlation_id="c")


@hostile
@given(body=st.binary(max_size=300), header=st.one_of(st.none(), st.text(max_size=90)))
def test_any_header_on_any_body_is_accepted_only_if_it_is_the_bodys_signature(body, header):
    expected = sign_hub(SECRET, body).partition("=")[2]
    try:
        verify_hub_signature(SECRET, body, header)
    except Rejected as rejected:
        assert rejected.status == 401
    else:
        method, _, digest = header.strip().partition("=")
        assert method.strip().lower() == "sha256" and digest.strip().lower() == expected


@hostile
@given(body=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=63), upper=st.booleans(),
       pad=st.sampled_from(["", " ", "\t", "\n"]))
def test_case_and_surrounding_whitespace_do_not_matter_but_a_truncated_digest_is_refused(body, cut, upper, pad):
    good = sign_hub(SECRET, body)
    shown = good.upper().replace("SHA256=", "sha256=") if upper else good
    verify_hub_signature(SECRET, body, f"{pad}{shown}{pad}")
    with pytest.raises(Rejected):
        verify_hub_signature(SECRET, body, good[:len("sha256=") + cut])


@hostile
@given(body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_a_valid_signature_replayed_with_another_body_is_refused(body, other):
    if body == other:
        return
    with pytest.raises(Rejected):
        verify_hub_signature(SECRET, other, sign_hub(SECRET, body))


@hostile
@given(body=st.binary(max_size=200), algorithm=st.sampled_from(["sha1", "md5", "sha512", "sha384", "sha-256", ""]))
def test_another_algorithm_is_refused_even_with_the_right_hmac(body, algorithm):
    digest = hmac.new(SECRET.encode(), body, getattr(hashlib, algorithm.replace("-", ""), hashlib.sha256)).hexdigest()
    with pytest.raises(Rejected):
        verify_hub_signature(SECRET, body, f"{algorithm}={digest}")


@hostile
@given(claims=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
def test_an_unsigned_jwt_or_one_signed_with_another_key_is_refused(claims):
    payload = {**claims, "exp": int(time.time()) + 300}
    unsigned = jwt.encode(payload, key=None, algorithm="none")
    with pytest.raises(Rejected):
        verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {unsigned}")
    forged = jwt.encode(payload, "another-key-entirely-32-bytes-long", algorithm="HS256")
    with pytest.raises(Rejected):
        verify_dynamic_webhook_jwt(CLIENT_SECRET, f"Bearer {forged}")


@hostile
@given(header=st.text(max_size=120))
def test_any_authorization_header_gets_a_verdict(header):
    with pytest.raises(Rejected) as rejected:
        verify_dynamic_webhook_jwt(CLIENT_SECRET, header)
    assert rejected.value.status == 401


@hostile
@given(payload=jira_like)
def test_a_validly_signed_jira_delivery_of_any_shape_gets_a_verdict_not_a_crash(payload):
    body = json.dumps(payload).encode()
    try:
        deliver(body, {"x-hub-signature": sign_hub(SECRET, body)})
    except Rejected as rejected:
        assert rejected.status == 400


push_rows = st.lists(st.fixed_dictionaries({}, optional={
    "Type": st.one_of(st.sampled_from(["Bill", "INV", "a:b", ":", ""]), st.text(max_size=6)),
    "ReferenceNbr": st.one_of(st.text(max_size=8), st.integers()), "OrderNbr": st.text(max_size=6),
    "Entity": st.sampled_from(["Bill", "PurchaseOrder", "Check", "Nope"])}), max_size=4)
push_like = st.one_of(jira_like, st.fixed_dictionaries({"Id": st.text(max_size=8), "Inserted": push_rows},
                                                       optional={"Query": st.sampled_from(["AJC-Bills", "x"])}))


@hostile
@given(payload=push_like)
def test_an_authentic_push_notification_of_any_shape_gets_a_verdict_not_a_crash(payload):
    body = json.dumps(payload).encode()
    try:
        accept_push(body, {"x-connector-secret": PUSH_SECRET}, push_secret=PUSH_SECRET,
                    header_name="X-Connector-Secret", correlation_id="c")
    except Rejected as rejected:
        assert rejected.status == 400
