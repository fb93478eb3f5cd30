"""Loopback stand-ins for the channel providers, in a process of their own.

One HTTP server answers the SMS, push, webhook and wallet APIs (``POST /sms``, ``/push``,
``/webhook``, ``/wallet``: 200 with a message id, HTTP/1.1 keep-alive as real providers
do) and one SMTP server (aiosmtpd) accepts every message. They run in a child process
so that serving the job's requests does not take the job's interpreter lock: the job
pays for its side of every request (connection, encoding, waiting), not the server's.

:func:`loopback_providers` starts them and yields the settings that point the job's
real senders at them (``pipeline.settings.Settings`` fields ``email``, ``sms``,
``push``, ``wallet``, ``webhook``), the way ``pitboss run`` is configured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PATHS = ("/sms", "/push", "/webhook", "/wallet")


class _Counts:
    """Requests and messages received, by path (read when the parent asks)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_path: dict[str, int] = {}

    def add(self, path: str) -> int:
        with self.lock:
            count = self.by_path.get(path, 0) + 1
            self.by_path[path] = count
            return count


def _http_server(counts: _Counts) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep the job's connection open between requests
        # Headers and body go out in two writes: with Nagle on, the body waits for the
        # client's delayed ACK (40 ms a request on Linux).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            count = counts.add(self.path)
            answer = b'{"id": "m-%d"}' % count
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def serve() -> None:
    """Child process: start both servers, print their ports, run until stdin closes.

    Each line read from stdin is a request for the counts, answered with one JSON line.
    """
    from aiosmtpd.controller import Controller

    sys.path.insert(0, str(REPO))
    from tests.support.tansu import free_port

    counts = _Counts()

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
            counts.add("smtp")
            return "250 2.0.0 OK queued"

    http = _http_server(counts)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    smtp_port = free_port()  # aiosmtpd cannot be told to pick one (port 0)
    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    print(json.dumps({"http": http.server_address[1], "smtp": smtp_port}), flush=True)
    for _ in sys.stdin:
        with counts.lock:
            print(json.dumps(counts.by_path), flush=True)
    smtp.stop()
    http.shutdown()


class Providers:
    """The parent's handle on the server process."""

    def __init__(self, proc: subprocess.Popen[str], http_port: int, smtp_port: int) -> None:
        self._proc = proc
        self.http_port = http_port
        self.smtp_port = smtp_port

    def settings(self) -> dict[str, Any]:
        """``Settings`` fields pointing every channel sender at these servers.

        Delivery policies are the defaults: nothing here fails, so no retry waits.
        """
        base = f"http://127.0.0.1:{self.http_port}"
        return {
            "email": {
                "name": "smtp-bench",
                "host": "127.0.0.1",
                "port": self.smtp_port,
                "helo_hostname": "pitboss.bench",
                "from_address": "bonus@casino.example",
                "unsubscribe_mailto": "unsubscribe@casino.example",
            },
            "sms": {"name": "sms-bench", "url": f"{base}/sms", "sender_id": "Casino"},
            "push": {"name": "push-bench", "url": f"{base}/push"},
            "wallet": {"name": "wallet-bench", "url": f"{base}/wallet"},
            "webhook": {"name": "webhook-bench", "url": f"{base}/webhook", "secret": "bench"},
        }

    def counts(self) -> dict[str, int]:
        """Requests received so far, by path (``smtp``: messages accepted)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("\n")
        self._proc.stdin.flush()
        counts: dict[str, int] = json.loads(self._proc.stdout.readline())
        return counts


@contextmanager
def loopback_providers() -> Iterator[Providers]:
    """Run the provider servers in a child process for the duration of the block."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the loopback provider servers did not start")
        ports = json.loads(line)
        yield Providers(proc, ports["http"], ports["smtp"])
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    serve()
