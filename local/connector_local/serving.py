"""One way to serve a WSGI app on a free local port, shared by the sandboxes and the local API gateway.

They all need the same thing: a Werkzeug server on port 0 (so parallel runs never collide), in a daemon thread (so a
forgotten ``stop()`` never keeps the process alive), and a ``stop()`` that frees the socket before returning (so a
test that follows cannot race the old server).
"""

from __future__ import annotations

import threading
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Callable, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: tests and the demo print only what matters."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class LoopbackServer:
    """Serves ``app`` with ``start()`` / ``stop()`` / ``url``; starting twice keeps the running server.

    ``port=0`` asks the OS for a free port, read back through ``port`` once started. ``quiet`` drops Werkzeug's
    per-request access log, which the sandboxes replace with their own request journals. ``clock``: the time the
    ``Date`` response header gives (the standard library's server writes that header itself, from the wall clock),
    so a sandbox with a clock of its own answers with it, as a real server answers with its machine's clock.
    """

    def __init__(self, app: Any, *, name: str, host: str = "127.0.0.1", port: int = 0, quiet: bool = True,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.name = name
        self._clock = clock
        self.host = host
        self._requested_port = port
        self._quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackServer:
        if self._server is None:
            handler: type[WSGIRequestHandler] | None = QuietRequestHandler if self._quiet else None
            if self._clock is not None:
                clock = self._clock

                class ClockedRequestHandler(handler or WSGIRequestHandler):  # type: ignore[misc, valid-type]
                    def date_time_string(self, timestamp: float | None = None) -> str:
                        return super().date_time_string(timestamp) if timestamp is not None else format_datetime(
                            clock(), usegmt=True)

                handler = ClockedRequestHandler
            self._server = make_server(self.host, self._requested_port, self.app, threaded=True,
                                       request_handler=handler)
            # A short poll interval keeps stop() fast: shutdown() waits for the serve loop to notice.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the serving thread; stopping a stopped server does nothing."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when asked for 0)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Served:
    """``start()`` / ``stop()`` / ``url`` / ``with`` for a class that serves through its ``_server``."""

    _server: LoopbackServer

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, only while started."""
        return self._server.url
