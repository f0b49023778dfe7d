"""Hosts that do not answer, each in its own way, on 127.0.0.1 (no test depends on the network around it)."""

from __future__ import annotations

import socket
import time

import pytest


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: the connection is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word: the request waits for an answer that never comes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def blackhole_port():
    """A port whose listen queue is full and never drained: Linux drops further SYNs, so a connection is never
    accepted, as with an address that swallows packets (a firewall's DROP, a stopped VM's IP)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", server.getsockname()[1]))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.2)
    yield server.getsockname()[1]
    for filler in fillers:
        filler.close()
    server.close()
