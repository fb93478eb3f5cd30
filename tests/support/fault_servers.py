"""Servers the fault tests take away: a private redis-server, frozen processes, a held request.

The shared Redis (``REDIS_URL``) is never stopped, frozen or flushed: a Redis outage is
staged on a redis-server of the test's own, on a free port, stopped when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from tests.support.fault_helpers import wait_until
from tests.support.providers import Providers, Received
from tests.support.tansu import free_port


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """Freeze a process (SIGSTOP) for the ``with`` block; it always gets SIGCONT after.

    A frozen server keeps its sockets open and its data in memory but answers nothing:
    clients see timeouts, as with a server that hangs or a network partition.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class RedisServer:
    """A redis-server of the test's own on a free loopback port.

    With ``data_dir`` it keeps an append-only file there (fsync on every write), so it
    can be stopped and started again on the same port with its data, like a production
    Redis with persistence; without, it keeps nothing.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        """Pick the port; :meth:`start` starts the server."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self._binary = binary
        self._data_dir = data_dir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT``."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._proc is not None, "redis-server was never started"
        return self._proc.pid

    def client(self) -> redis.Redis:
        """A client of this server (close it after use)."""
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server (on the same port after a :meth:`stop`); wait until it answers."""
        persistence = ["--save", "", "--appendonly", "no"]
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            persistence = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
            persistence += ["--dir", str(self._data_dir)]
        proc = self._proc = subprocess.Popen(
            [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", *persistence],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.2, socket_connect_timeout=0.2)

        def answers() -> bool:
            assert proc.poll() is None, f"redis-server on port {self.port} exited"
            with contextlib.suppress(redis.RedisError):
                return bool(client.ping())
            return False

        try:
            wait_until(answers, timeout_s, f"redis-server answers on port {self.port}", poll_s=0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (woken first, in case it is frozen) and reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class GatedProviders(Providers):
    """The fake providers, able to hold one request until the test lets it go.

    ``hold(path, nth)`` arms the gate: the ``nth`` request on ``path`` is recorded, then
    held. The test waits for :attr:`holding`, does what it must while the job is inside
    that call, and calls :meth:`let_go`. The held request is answered normally.
    """

    def __init__(self) -> None:
        """Start with no gate armed."""
        super().__init__()
        self.holding = threading.Event()
        self._let_go = threading.Event()
        self._gate: tuple[str, int] | None = None
        self._seen: dict[str, int] = {}
        self._gate_lock = threading.Lock()

    def hold(self, path: str, nth: int) -> None:
        """Hold the ``nth`` request on ``path`` (counting from 1)."""
        self._gate = (path, nth)

    def let_go(self) -> None:
        """Answer the held request."""
        self._let_go.set()

    def _answer(self, request: Received) -> tuple[int, dict[str, str], bytes]:
        answer = super()._answer(request)
        with self._gate_lock:
            self._seen[request.path] = count = self._seen.get(request.path, 0) + 1
        if self._gate == (request.path, count):
            self.holding.set()
            # Bounded: a test that never lets go must not hang the server's thread.
            self._let_go.wait(10)
        return answer


@contextlib.contextmanager
def running_gated_providers() -> Iterator[GatedProviders]:
    """Start gated fake providers; stop them (letting any held request go) on exit."""
    fake = GatedProviders()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.let_go()
        fake.release.set()
        fake.server.shutdown()
        fake.server.server_close()
