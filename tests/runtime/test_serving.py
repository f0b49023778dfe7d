"""The one server lifecycle the sandboxes and the local gateway share."""

from __future__ import annotations

import socket

import pytest
import requests
from werkzeug.wrappers import Request, Response

from connector_local.serving import LoopbackServer


@Request.application
def echo_path(request: Request) -> Response:
    return Response(request.path)


def test_started_server_answers_on_its_free_port_and_stops_freeing_it():
    server = LoopbackServer(echo_path, name="echo").start()
    port = server.port
    assert port > 0 and server.url == f"http://127.0.0.1:{port}"
    assert requests.get(f"{server.url}/hello", timeout=5).text == "/hello"
    server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_starting_twice_keeps_the_running_server_and_stopping_twice_is_harmless():
    server = LoopbackServer(echo_path, name="echo")
    assert server.start() is server
    port = server.port
    server.start()
    assert server.port == port
    server.stop()
    server.stop()


def test_url_of_a_stopped_server_is_refused_rather_than_guessed():
    server = LoopbackServer(echo_path, name="echo")
    with pytest.raises(RuntimeError, match="echo is not started"):
        server.url
