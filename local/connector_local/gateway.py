"""API Gateway HTTP API (payload format 2.0) in front of local functions.

The webhook handler verifies signatures over the raw body and reads lower-cased header names, so the event is built
as API Gateway builds it, not as a convenient approximation: lower-cased headers with repeats joined by commas,
cookies moved out of the headers, the body passed through as text only when it is textual UTF-8 and base64
otherwise, and the response mapped back with 2.0's inference rules (a result without ``statusCode`` is a 200 JSON
body).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import string
import time
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from werkzeug.wrappers import Request, Response

from .runtime import DEFAULT_ACCOUNT_ID, Invocable
from .serving import LoopbackServer, Served

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API's request payload quota
_TEXTUAL_APPLICATION_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


def _is_textual(content_type: str) -> bool:
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return (
        mimetype.startswith("text/")
        or mimetype in _TEXTUAL_APPLICATION_TYPES
        or mimetype.endswith("+json")
        or mimetype.endswith("+xml")
    )


def _json_response(status: int, message: str, request_id: str) -> Response:
    body = json.dumps({"message": message}, separators=(",", ":"))
    response = Response(body, status=status, content_type="application/json")
    response.headers["apigw-requestid"] = request_id
    return response


def _new_request_id() -> str:
    """The shape of HTTP API request ids (``JKJaXmPLvHcESHA=``): base64 of 10 random bytes."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")


class HttpApiGateway(Served):
    """A Werkzeug server routing ``(METHOD, path)`` to functions; ``start()``/``stop()``/``url``, or ``with``.

    ``routes`` is kept by reference, so a caller may start the gateway first (its URL goes into the functions'
    environment, e.g. ``WEBHOOK_URL``) and add the routes once the handlers are loaded.
    """

    def __init__(
        self,
        routes: Mapping[tuple[str, str], Invocable],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.routes = routes  # read on every request: routes added after start() are served
        self.host = host
        self.port = port
        self.account_id = account_id
        self.api_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
        # Keeps Werkzeug's access log: unlike the sandboxes, the gateway keeps no request journal of its own.
        self._server = LoopbackServer(self._wsgi, name="http-api-gateway", host=host, port=port, quiet=False)

    def start(self) -> HttpApiGateway:
        super().start()
        logger.info("HTTP API listening on %s", self.url)
        return self

    def route(self, method: str, path: str) -> Invocable | None:
        """The function for ``METHOD path`` (method case-insensitive, path exact: no path parameters here)."""
        for (route_method, route_path), function in list(self.routes.items()):
            if route_method.upper() == method.upper() and route_path == path:
                return function
        return None

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        request_id = _new_request_id()
        raw_path = urlsplit(request.environ.get("RAW_URI") or request.environ.get("PATH_INFO", "/")).path
        function = self.route(request.method, raw_path)
        if function is None:
            return _json_response(404, "Not Found", request_id)
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            return _json_response(413, "Request Entity Too Large", request_id)
        body = request.stream.read(MAX_PAYLOAD_BYTES + 1)
        if len(body) > MAX_PAYLOAD_BYTES:
            return _json_response(413, "Request Entity Too Large", request_id)
        event = self.build_event(request, raw_path, body, request_id)
        try:
            result = function.invoke(event)
        except Exception:
            logger.warning("%s failed on %s %s", function.name, request.method, raw_path, exc_info=True)
            return _json_response(500, "Internal Server Error", request_id)
        try:
            response = self.to_http_response(result)
        except (TypeError, ValueError) as error:
            logger.warning("%s returned a response API Gateway cannot map: %s", function.name, error)
            return _json_response(500, "Internal Server Error", request_id)
        response.headers["apigw-requestid"] = request_id
        return response

    def build_event(self, request: Request, raw_path: str, body: bytes, request_id: str) -> dict[str, Any]:
        """The payload format 2.0 event for this request, as API Gateway sends it to Lambda."""
        environ = request.environ
        headers: dict[str, str] = {}
        for name, value in request.headers.items():  # Werkzeug already joined repeated headers with ","
            headers[name.lower()] = value
        cookie_header = headers.pop("cookie", "")
        source_ip = environ.get("REMOTE_ADDR", "")
        headers["x-forwarded-for"] = ", ".join(part for part in (headers.get("x-forwarded-for"), source_ip) if part)
        headers["x-forwarded-proto"] = environ.get("wsgi.url_scheme", "http")
        headers["x-forwarded-port"] = str(environ.get("SERVER_PORT", ""))
        headers["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        host = headers.get("host", self.host)
        now = datetime.now(timezone.utc)
        route_key = f"{request.method} {raw_path}"
        raw_query = environ.get("QUERY_STRING", "")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        cookies = [part.strip() for part in cookie_header.split(";") if part.strip()]
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        if query:
            event["queryStringParameters"] = query
        event["requestContext"] = {
            "accountId": self.account_id,
            "apiId": self.api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": raw_path,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if body:
            text = None
            if _is_textual(headers.get("content-type", "")):
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            event["body"] = text if text is not None else base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = text is None
        else:
            event["isBase64Encoded"] = False
        return event

    @staticmethod
    def to_http_response(result: Any) -> Response:
        """Map a handler's result as payload format 2.0 does; ``ValueError``/``TypeError`` when it cannot."""
        if not (isinstance(result, dict) and "statusCode" in result):
            body = result if isinstance(result, str) else json.dumps(result)
            return Response(body, status=200, content_type="application/json")
        status = result["statusCode"]
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"statusCode must be an HTTP status integer, got {status!r}")
        body = result.get("body")
        if body is not None and not isinstance(body, str):
            raise TypeError("body must be a string")
        payload = base64.b64decode(body or "", validate=True) if result.get("isBase64Encoded") else (body or "")
        response = Response(payload, status=status)
        response.headers.remove("Content-Type")
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response
