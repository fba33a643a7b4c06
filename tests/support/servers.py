"""pytest plugin: run ASGI and WSGI apps under real servers on 127.0.0.1.

- ``asgi_server(app) -> base_url``: the app under uvicorn, in a thread.
- ``wsgi_server(app, server="wsgiref" | "werkzeug") -> base_url``: the app
  under the standard library's server (threaded) or werkzeug's.

Each server binds a free port chosen by the OS and is stopped when the test
ends. When a server cannot start, the test fails with the reason (it never
skips, see ``tests/conftest.py``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class _Uvicorn:
    """uvicorn serving one app on a socket it is handed, in a daemon thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        import uvicorn

        self.sock = _bound_socket()
        self.port = self.sock.getsockname()[1]
        options = {"log_level": "warning", "lifespan": "auto", "access_log": False, **config}
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            # Signal handlers are only installed from the main thread: none here.
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by start()
            self.error = exc

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while self.thread.is_alive() and not self.server.started and time.monotonic() < deadline:
            self.thread.join(0.02)
        if not self.server.started:
            self.stop()
            pytest.fail(f"uvicorn did not start: {self.error!r}", pytrace=False)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        self.sock.close()


class _WSGI:
    """A threaded WSGI server (wsgiref or werkzeug) in a daemon thread."""

    def __init__(self, app: Any, server: str) -> None:
        if server == "wsgiref":
            self.httpd: Any = make_server(
                "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
            )
        elif server == "werkzeug":
            from werkzeug.serving import make_server as werkzeug_server

            self.httpd = werkzeug_server("127.0.0.1", 0, app, threaded=True)
        else:
            raise ValueError(f"unknown WSGI server {server!r}: use 'wsgiref' or 'werkzeug'")
        self.port = self.httpd.server_port
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{server}-{self.port}",
            daemon=True,
        )

    def start(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(STOP_TIMEOUT)


@pytest.fixture
def asgi_server() -> Iterator[Callable[..., str]]:
    """Start ``app`` under uvicorn on a free 127.0.0.1 port; returns its base URL.

    Extra keywords go to ``uvicorn.Config`` (e.g. ``root_path=``,
    ``proxy_headers=``). Every server started is stopped after the test.
    """
    started: list[_Uvicorn] = []

    def start(app: Any, **config: Any) -> str:
        server = _Uvicorn(app, **config)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def wsgi_server() -> Iterator[Callable[..., str]]:
    """Start ``app`` under a threaded WSGI server on a free 127.0.0.1 port; returns its base URL.

    ``server="wsgiref"`` (the default: no ``REQUEST_URI``) or ``"werkzeug"``
    (sets ``REQUEST_URI`` and ``RAW_URI``). Stopped after the test.
    """
    started: list[_WSGI] = []

    def start(app: Any, *, server: str = "wsgiref") -> str:
        try:
            instance = _WSGI(app, server)
        except OSError as exc:
            pytest.fail(f"{server} did not start: {exc!r}", pytrace=False)
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        instance.stop()
