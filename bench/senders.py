"""The CPU one HTTP delivery costs the job: Pitboss's webhook sender against the same
POST through its HTTP library alone and through a bare ``http.client`` connection.

Run: ``.venv/bin/python bench/senders.py [--requests N] [--rounds R]``. It starts
``bench/servers.py``'s loopback providers (in a child process, so serving does not
count) and then, R times, interleaved: N sends of one action through ``WebhookSink``
(urllib3, keep-alive, the request built and signed per send, as the job does), N POSTs
of that same body and those same headers through a urllib3 ``HTTPConnectionPool``
alone, and N over one ``http.client`` connection. It prints the medians of this
process's CPU time (user + system) and wall time per request. The gaps are what the
sink's own work and the HTTP library cost per delivery.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import urllib3

from bench.servers import loopback_providers
from operators.actions import Action, ActionKind
from sinks.http import WebhookSettings, WebhookSink


def per_request(work: Callable[[], object], count: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per call of ``work``, over ``count`` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        work()
    return (
        (time.process_time() - cpu) / count * 1e6,
        (time.perf_counter() - wall) / count * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    action = Action(
        action_id="a-0123456789abcdef01234567",
        campaign_id="weekly_cashback",
        player_id="p000123",
        kind=ActionKind.REWARD,
        channel="webhook",
        payload={"type": "cashback", "amount": "12.50", "currency": "EUR"},
        event_id="e000456",
        decision="sent",
        event_at=at,
        decided_at=at,
    )
    with loopback_providers() as providers:
        settings = WebhookSettings(**providers.settings()["webhook"])
        sink = WebhookSink(settings)
        request = sink.build_request(action)
        headers = {"Content-Type": "application/json; charset=utf-8", **request.headers}
        connection = http.client.HTTPConnection("127.0.0.1", providers.http_port, timeout=5)
        pool = urllib3.HTTPConnectionPool(
            "127.0.0.1", providers.http_port, maxsize=1, retries=False, timeout=5.0
        )

        def pooled() -> None:
            response = pool.urlopen(
                "POST", "/webhook", body=request.body, headers=headers, redirect=False
            )
            assert response.status == 200, response.status

        def bare() -> None:
            connection.request("POST", "/webhook", body=request.body, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status

        sink.send(action)  # connections open before the clock starts
        bare()
        pooled()
        results: dict[str, list[tuple[float, float]]] = {"sender": [], "urllib3": [], "bare": []}
        for round_no in range(args.rounds):
            results["sender"].append(per_request(lambda: sink.send(action), args.requests))
            results["urllib3"].append(per_request(pooled, args.requests))
            results["bare"].append(per_request(bare, args.requests))
            print(
                f"round {round_no + 1}: WebhookSink {results['sender'][-1][0]:,.0f}, "
                f"urllib3 {results['urllib3'][-1][0]:,.0f}, "
                f"http.client {results['bare'][-1][0]:,.0f} µs CPU per request",
                flush=True,
            )
        sink.close()
        pool.close()
        connection.close()

    print()
    print(f"{args.requests:,} requests per round, {args.rounds} rounds, medians")
    print()
    print("| per request | CPU µs | wall µs |")
    print("|---|---|---|")
    names = {
        "sender": "`WebhookSink.send` (urllib3)",
        "urllib3": "urllib3 `HTTPConnectionPool.urlopen` POST",
        "bare": "bare `http.client` POST",
    }
    for key, name in names.items():
        cpu = statistics.median(r[0] for r in results[key])
        wall = statistics.median(r[1] for r in results[key])
        print(f"| {name} | {cpu:,.0f} | {wall:,.0f} |")


if __name__ == "__main__":
    main()
