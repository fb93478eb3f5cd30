"""Fake HTTP providers (SMS, push, webhook, wallet) on a real loopback server.

Each path answers 200 with a message id unless a test scripts other statuses for it
first; ``/slow`` answers only after longer than any attempt timeout. By default the
server speaks HTTP/1.0 (a connection per request); ``keep_alive=True`` makes it HTTP/1.1
with persistent connections, and ``tls`` serves HTTPS. Each request notes the client's
port, so a test can count the connections a client opened.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_SECONDS = 3.0  # the slow provider answers after this, or when the test ends


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int  # one per connection the client opened

    def json(self) -> Any:
        return json.loads(self.body)


class Providers:
    """The fake providers' shared state: what arrived, and what to answer next."""

    def __init__(self, keep_alive: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.rejected_players: set[str] = set()
        self.delays: dict[str, float] = {}  # path -> seconds before answering
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(keep_alive))
        self.server.daemon_threads = keep_alive  # a kept-alive connection may outlive a test
        self.scheme = "http" if tls is None else "https"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}{path}"

    def script(self, path: str, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next requests on ``path`` with these statuses, then 200 again."""
        self.scripts[path] = [(status, headers or {}) for status in statuses]

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def client_ports(self) -> list[int]:
        """The client port of every request so far, in order of arrival."""
        with self.lock:
            return [r.client_port for r in self.received]

    def _answer(self, request: Received) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.received.append(request)
            count = len(self.received)
            script = self.scripts.get(request.path)
            scripted = script.pop(0) if script else None
        if request.path == "/slow":
            self.release.wait(SLOW_SECONDS)
        elif request.path in self.delays:
            self.release.wait(self.delays[request.path])
        if scripted is not None:
            return scripted[0], scripted[1], b""
        if request.path == "/wallet" and request.json()["player_id"] in self.rejected_players:
            return 422, {}, b'{"error": "player cannot receive bonuses"}'
        return 200, {"Content-Type": "application/json"}, json.dumps({"id": f"m-{count}"}).encode()

    def _handler(self, keep_alive: bool) -> type[BaseHTTPRequestHandler]:
        providers = self

        class Handler(BaseHTTPRequestHandler):
            if keep_alive:
                protocol_version = "HTTP/1.1"
                disable_nagle_algorithm = True  # else each answer waits for a delayed ACK

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Received(self.path, headers, body, self.client_address[1])
                status, extra, answer = providers._answer(request)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # bodies and numbers stay out of the test log too

        return Handler


@contextmanager
def running_providers(
    keep_alive: bool = False, tls: ssl.SSLContext | None = None
) -> Iterator[Providers]:
    """Start the fake providers; stop them (and release slow requests) on exit."""
    fake = Providers(keep_alive, tls)
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        fake.server.shutdown()
        fake.server.server_close()
