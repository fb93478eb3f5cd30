"""What HttpSink's client does on the wire, against real servers on loopback.

The providers in ``test_http_sinks.py`` speak HTTP/1.0 (a connection per request); here
the same providers in HTTP/1.1, noting each request's connection, show keep-alive; a raw
socket server misbehaves on purpose (accepts and never answers, or resets mid-response);
and the providers over HTTPS with a self-signed certificate show the TLS verification
switch.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from operators.actions import Action, ActionKind
from sinks.base import (
    DeliveryPolicy,
    DeliveryStatus,
    PermanentDeliveryError,
    ResilientSender,
    TransientDeliveryError,
)
from sinks.http import HttpProviderSettings, PushSink, WalletSink, WebhookSettings, WebhookSink
from tests.support.providers import Providers, running_providers

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
FAST = DeliveryPolicy(
    attempt_timeout_seconds=0.3,
    deadline_seconds=2.0,
    max_attempts=3,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.02,
)


def reward(n: int = 1) -> Action:
    return Action(
        action_id=f"a-wire-{n:04d}",
        campaign_id="welcome",
        player_id=f"p-{n}",
        kind=ActionKind.REWARD,
        channel="wallet",
        payload={"reward_type": "bonus", "amount": "5", "to": "+79991234567"},
        event_id=f"e-{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )


# For tests that count requests: a loaded machine must not turn a slow answer into a retry.
PATIENT = FAST.model_copy(update={"attempt_timeout_seconds": 10.0, "deadline_seconds": 20.0})


def wallet(url: str, delivery: DeliveryPolicy = FAST, **settings: Any) -> WalletSink:
    provider = HttpProviderSettings(name="wallet-test", url=url, delivery=delivery, **settings)
    return WalletSink(provider)


@contextlib.contextmanager
def raw_server(serve: Callable[[socket.socket, int], None]) -> Iterator[str]:
    """A TCP server on loopback calling ``serve(connection, n)`` for the n-th connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        n = 0
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            n += 1
            held.append(connection)
            serve(connection, n)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/wallet"
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        for connection in held:
            connection.close()
        thread.join(timeout=5)


def read_request(connection: socket.socket) -> bytes:
    """Read one small request (headers and a body that came with them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_sends_reuse_one_keep_alive_connection() -> None:
    with running_providers(keep_alive=True) as server:
        sink = wallet(server.url("/wallet"), PATIENT)
        ids = [sink.send(reward(n)) for n in range(1, 21)]
        sink.close()
    ports = server.client_ports()
    assert ids == [f"m-{n}" for n in range(1, 21)]
    assert len(ports) == 20 and len(set(ports)) == 1


def test_delivery_threads_share_the_pool_and_every_send_gets_its_own_answer() -> None:
    with running_providers(keep_alive=True) as server:
        sink = wallet(server.url("/wallet"), PATIENT)
        with ThreadPoolExecutor(8) as threads:
            ids = list(threads.map(lambda n: sink.send(reward(n)), range(1, 201)))
        sink.close()
    ports = server.client_ports()
    assert sorted(ids, key=lambda i: int(str(i)[2:])) == [f"m-{n}" for n in range(1, 201)]
    assert len(ports) == 200 and len(set(ports)) <= 8


def test_a_server_that_accepts_but_never_answers_is_cut_off_at_the_attempt_timeout() -> None:
    with raw_server(lambda connection, n: None) as url:  # reads nothing, answers nothing
        sink = wallet(url)
        started = time.monotonic()
        with pytest.raises(TransientDeliveryError) as raised:
            sink.send(reward(), timeout=0.3)
        elapsed = time.monotonic() - started
        sink.close()
    assert (
        str(raised.value) == "wallet-test: action a-wire-0001: timed out after 0.3s (ReadTimeout)"
    )
    assert 0.25 <= elapsed < 1.5


def test_a_connection_reset_mid_response_is_transient_and_the_retry_delivers() -> None:
    def serve(connection: socket.socket, n: int) -> None:
        read_request(connection)
        if n == 1:  # headers and half the body, then a reset (RST, not FIN)
            connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id": ')
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
            return
        answer = b'{"id": "m-2"}'
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
        )

    reasons: list[str] = []
    with raw_server(serve) as url:
        sink = wallet(url)
        with pytest.raises(TransientDeliveryError) as raised:
            sink.send(reward())
        reasons.append(str(raised.value))
        delivery = ResilientSender(sink).deliver(reward(2))
        sink.close()
    assert reasons[0].startswith("wallet-test: action a-wire-0001: connection failed (")
    assert "+7999" not in reasons[0] and "bonus" not in reasons[0]
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.provider_message_id == "m-2"


def test_a_retry_after_http_date_is_read_as_seconds_from_now(providers: Providers) -> None:
    now = time.time()
    later = format_datetime(dt.datetime.fromtimestamp(now + 30, dt.UTC), usegmt=True)
    providers.script("/hook", 503, headers={"Retry-After": later})
    settings = WebhookSettings(name="crm-hook", url=providers.url("/hook"), secret="s")
    sink = WebhookSink(settings, now=lambda: now)
    hook = reward().model_copy(update={"channel": "webhook"})
    with pytest.raises(TransientDeliveryError) as raised:
        sink.send(hook)
    sink.close()
    assert raised.value.retry_after is not None and 29 <= raised.value.retry_after <= 30


def test_a_redirect_is_not_followed_and_is_permanent(providers: Providers) -> None:
    providers.script("/wallet", 302, headers={"Location": providers.url("/sms")})
    sink = wallet(providers.url("/wallet"))
    with pytest.raises(PermanentDeliveryError, match="HTTP 302"):
        sink.send(reward())
    sink.close()
    assert len(providers.on("/wallet")) == 1 and providers.on("/sms") == []


def test_basic_auth_encodes_a_non_ascii_password_as_utf8(providers: Providers) -> None:
    settings = HttpProviderSettings(
        name="push-test", url=providers.url("/push"), username="pitboss", password="пароль€"
    )
    sink = PushSink(settings)
    push = reward().model_copy(
        update={
            "channel": "push",
            "payload": {"device_token": "t", "rendered": {"title": "T", "body": "B"}},
        }
    )
    assert sink.send(push) == "m-1"
    sink.close()
    (request,) = providers.on("/push")
    scheme, credentials = request.headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == "pitboss:пароль€"


def test_extra_headers_from_settings_reach_the_provider_and_requests_add_their_own(
    providers: Providers,
) -> None:
    sink = wallet(providers.url("/wallet"), headers={"X-Tenant": "casino-7"})
    sink.send(reward())
    sink.close()
    (request,) = providers.on("/wallet")
    assert request.headers["x-tenant"] == "casino-7"
    assert request.headers["idempotency-key"] == "a-wire-0001"


def test_tls_is_verified_unless_switched_off(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    with running_providers(keep_alive=True, tls=tls) as server:
        verified = wallet(server.url("/wallet"))
        with pytest.raises(TransientDeliveryError, match=r"connection failed \(SSLError\)"):
            verified.send(reward())
        verified.close()
        unverified = wallet(server.url("/wallet"), PATIENT, verify_tls=False)
        assert unverified.send(reward()) == "m-1"  # and no InsecureRequestWarning (an error)
        assert unverified.send(reward(2)) == "m-2"
        unverified.close()
    assert len(set(server.client_ports())) == 1


def test_a_request_header_replaces_a_configured_one_of_any_spelling() -> None:
    requests: list[bytes] = []

    def serve(connection: socket.socket, n: int) -> None:
        requests.append(read_request(connection))
        connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    with raw_server(serve) as url:
        sink = wallet(url, headers={"idempotency-key": "configured", "X-Tenant": "casino-7"})
        assert sink.send(reward()) is None
        sink.close()
    head = requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.count(b"idempotency-key:") == 1 and b"idempotency-key: a-wire-0001" in head
    assert b"x-tenant: casino-7" in head


def test_a_header_http_cannot_carry_is_refused_at_start_without_showing_its_value() -> None:
    with pytest.raises(ValueError, match="header 'X-Signature' is not Latin-1 text") as raised:
        wallet("http://127.0.0.1:9/wallet", headers={"X-Signature": "секрет"})
    assert "секрет" not in str(raised.value)


def test_a_provider_url_without_a_host_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="the provider url has no host"):
        HttpProviderSettings(name="wallet-test", url="http:///wallet")
