from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
from urllib.parse import urlsplit

import pytest
import requests

from connector_local.gateway import MAX_PAYLOAD_BYTES, HttpApiGateway
from connector_local.runtime import LocalFunction


class Capture:
    """A webhook stand-in: keeps the events it receives and answers with ``reply`` (or raises it)."""

    def __init__(self):
        self.events = []
        self.reply = {"statusCode": 202, "body": ""}

    def __call__(self, event, context):
        self.events.append(event)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.fixture(scope="module")
def capture():
    return Capture()


@pytest.fixture(scope="module")
def gateway(capture):
    function = LocalFunction("WebhookFunction", capture, 10, 256)
    with HttpApiGateway({("POST", "/jira/webhook"): function, ("post", "/acumatica/push"): function}) as server:
        yield server


@pytest.fixture(autouse=True)
def reset(capture):
    capture.events.clear()
    capture.reply = {"statusCode": 202, "body": ""}


def raw_post(url: str, path: str, body: bytes, headers: list[tuple[str, str]]) -> http.client.HTTPResponse:
    """POST with repeated headers and exact bytes, which higher-level clients normalise away."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", path)
    for name, value in headers:
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_signed_json_body_arrives_byte_for_byte_and_verifies(gateway, capture):
    secret = b"webhook-secret"
    body = '{"webhookEvent":"jira:issue_updated","summary":"Überfällig €"}'.encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()

    response = raw_post(gateway.url, "/jira/webhook", body,
                        [("Content-Type", "application/json"), ("X-Hub-Signature", signature)])

    event = capture.events[0]
    assert response.status == 202
    assert event["isBase64Encoded"] is False
    assert event["body"].encode("utf-8") == body
    expected = "sha256=" + hmac.new(secret, event["body"].encode("utf-8"), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(event["headers"]["x-hub-signature"], expected)


def test_header_names_are_lower_cased_and_repeats_joined_with_commas(gateway, capture):
    raw_post(gateway.url, "/jira/webhook", b"{}",
             [("Content-Type", "application/json"), ("X-Atlassian-Webhook-Identifier", "42"),
              ("X-Multi", "one"), ("X-Multi", "two")])

    headers = capture.events[0]["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-atlassian-webhook-identifier"] == "42"
    assert headers["x-multi"] == "one,two"
    assert headers["content-type"] == "application/json"


def test_binary_body_is_base64_encoded(gateway, capture):
    body = bytes(range(256))

    raw_post(gateway.url, "/acumatica/push", body, [("Content-Type", "application/octet-stream")])

    event = capture.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_json_content_type_with_invalid_utf8_is_base64_encoded(gateway, capture):
    body = b'{"name": "\xff\xfe"}'

    raw_post(gateway.url, "/acumatica/push", body, [("Content-Type", "application/json")])

    event = capture.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_event_has_the_payload_format_2_fields(gateway, capture):
    requests.post(f"{gateway.url}/jira/webhook?user_id=a&user_id=b&flag=", json={"a": 1},
                  headers={"Cookie": "s=1; t=2", "User-Agent": "Atlassian Webhook HTTP Client"}, timeout=10)

    event = capture.events[0]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /jira/webhook"
    assert event["rawPath"] == "/jira/webhook"
    assert event["rawQueryString"] == "user_id=a&user_id=b&flag="
    assert event["queryStringParameters"] == {"user_id": "a,b", "flag": ""}
    assert event["cookies"] == ["s=1", "t=2"]
    assert "cookie" not in event["headers"]
    assert "pathParameters" not in event
    context = event["requestContext"]
    assert context["routeKey"] == "POST /jira/webhook"
    assert context["stage"] == "$default"
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == gateway.api_id
    assert context["http"] == {"method": "POST", "path": "/jira/webhook", "protocol": "HTTP/1.1",
                               "sourceIp": "127.0.0.1", "userAgent": "Atlassian Webhook HTTP Client"}
    assert context["requestId"] and isinstance(context["timeEpoch"], int)
    assert context["domainName"] == urlsplit(gateway.url).netloc


def test_request_without_body_has_no_body_field(gateway, capture):
    raw_post(gateway.url, "/jira/webhook", b"", [])

    event = capture.events[0]
    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_unknown_route_or_method_is_404_not_found(gateway, capture):
    unknown_path = requests.post(f"{gateway.url}/nope", data=b"{}", timeout=10)
    wrong_method = requests.get(f"{gateway.url}/jira/webhook", timeout=10)

    for response in (unknown_path, wrong_method):
        assert response.status_code == 404
        assert response.json() == {"message": "Not Found"}
    assert capture.events == []


def test_payload_over_ten_megabytes_is_413_and_never_invoked(gateway, capture):
    response = requests.post(f"{gateway.url}/jira/webhook", data=b"x" * (MAX_PAYLOAD_BYTES + 1),
                             headers={"Content-Type": "application/json"}, timeout=10)

    assert response.status_code == 413
    assert capture.events == []


def test_plain_dict_result_becomes_200_json(gateway, capture):
    capture.reply = {"accepted": True}

    response = requests.post(f"{gateway.url}/jira/webhook", json={}, timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"accepted": True}


def test_plain_string_result_becomes_200_with_that_body(gateway, capture):
    capture.reply = "ignored"

    response = requests.post(f"{gateway.url}/jira/webhook", json={}, timeout=10)

    assert (response.status_code, response.text) == (200, "ignored")


def test_structured_result_sets_status_headers_cookies_and_decodes_base64(gateway, capture):
    capture.reply = {
        "statusCode": 401,
        "headers": {"Content-Type": "application/json", "X-Reason": "signature"},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": base64.b64encode(b'{"message":"bad signature"}').decode(),
        "isBase64Encoded": True,
    }

    response = requests.post(f"{gateway.url}/jira/webhook", json={}, timeout=10)

    assert response.status_code == 401
    assert response.headers["X-Reason"] == "signature"
    assert response.json() == {"message": "bad signature"}
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert response.headers["apigw-requestid"] == capture.events[0]["requestContext"]["requestId"]


@pytest.mark.parametrize("reply", [RuntimeError("handler bug"), {"statusCode": "200"}, {"statusCode": 200, "body": {}}])
def test_handler_exception_or_unmappable_result_is_500(gateway, capture, reply):
    capture.reply = reply

    response = requests.post(f"{gateway.url}/jira/webhook", json={}, timeout=10)

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_gateway_stops_and_frees_its_port():
    gateway = HttpApiGateway({}).start()
    url = gateway.url
    gateway.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    with pytest.raises(RuntimeError):
        _ = gateway.url


def test_routes_added_after_start_are_served():
    routes = {}
    with HttpApiGateway(routes) as gateway:
        routes[("POST", "/late")] = LocalFunction("Late", lambda event, context: {"late": True}, 3, 128)

        response = requests.post(f"{gateway.url}/late", json={}, timeout=10)

    assert response.json() == {"late": True}
