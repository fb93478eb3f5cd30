"""The leaderboard read path: ``pitboss leaderboard NAME`` and ``GET /leaderboards/<name>``.

Both read the leaderboard store (:mod:`sinks.leaderboards`) and show the same thing: a
board's standings in one period (the newest one with scores unless a period is asked
for), the first ``top`` players, and optionally one player's own standing.

HTTP (stdlib ``http.server`` in a daemon thread, next to the metrics endpoint)::

    GET /leaderboards                         -> {"boards": [...]} (names given at start)
    GET /leaderboards/<name>?top=N&player=ID&period=P
        200 {"board", "period", "players", "top": [{"rank", "player_id", "score",
             "reached_at"}], "player": {...} | null}
        400 bad parameters; 404 unknown board or period; 503 store unavailable
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sinks.leaderboards.base import NAME_PATTERN, LeaderboardStore, Standing
from sinks.stores.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

MAX_TOP = 1000
"""The most rows one request may ask for."""


class LeaderboardNotFound(LookupError):  # noqa: N818 (reads as what the reader gets: 404)
    """The board has no scores (or not in the period asked for)."""


def _row(standing: Standing) -> dict[str, Any]:
    reached = standing.reached_at
    return {
        "rank": standing.rank,
        "player_id": standing.player_id,
        "score": str(standing.value),
        "reached_at": None
        if reached is None
        else datetime.fromtimestamp(reached, UTC).isoformat().replace("+00:00", "Z"),
    }


def leaderboard_view(
    store: LeaderboardStore,
    name: str,
    *,
    top: int = 10,
    player: str | None = None,
    period: str | None = None,
) -> dict[str, Any]:
    """A board's standings as a JSON-ready dict; raises LeaderboardNotFound or ValueError."""
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= MAX_TOP:
        raise ValueError(f"top must be an integer from 1 to {MAX_TOP}, got {top!r}")
    for value, what in ((name, "leaderboard name"), (period, "period"), (player, "player")):
        if value is not None and not NAME_PATTERN.match(value):
            raise ValueError(f"{what} {value!r} is not valid (letters, digits, _.:- only)")
    periods = store.periods(name)
    if not periods:
        raise LeaderboardNotFound(f"leaderboard {name!r} has no scores")
    if period is None:
        period = periods[0]
    elif period not in periods:
        raise LeaderboardNotFound(
            f"leaderboard {name!r} has no scores for period {period!r}; "
            f"periods: {', '.join(periods[:5])}"
        )
    found = None if player is None else store.standing(name, period, player)
    return {
        "board": name,
        "period": period,
        "players": store.size(name, period),
        "top": [_row(standing) for standing in store.top(name, period, top)],
        "player": None if found is None else _row(found),
    }


def leaderboard_command(
    store: LeaderboardStore,
    name: str,
    top: int = 10,
    player: str | None = None,
    period: str | None = None,
) -> str:
    """The text ``pitboss leaderboard NAME [--top N] [--player ID] [--period P]`` prints.

    Raises LeaderboardNotFound or ValueError with a message for the terminal.
    """
    view = leaderboard_view(store, name, top=top, player=player, period=period)
    rows = view["top"]
    width = max([len("player"), *(len(r["player_id"]) for r in rows)])
    score_width = max([len("score"), *(len(r["score"]) for r in rows)])
    lines = [
        f"{view['board']}  {view['period']}  ({view['players']} players)",
        f"{'rank':>4}  {'player':<{width}}  {'score':>{score_width}}",
    ]
    lines += [
        f"{r['rank']:>4}  {r['player_id']:<{width}}  {r['score']:>{score_width}}" for r in rows
    ]
    if player is not None:
        mine = view["player"]
        lines.append(
            f"{player}: no score in {view['period']}"
            if mine is None
            else f"{player}: rank {mine['rank']}, score {mine['score']}"
        )
    return "\n".join(lines)


class _Handler(BaseHTTPRequestHandler):
    server: LeaderboardServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        if path == "/leaderboards":
            self._send(200, {"boards": list(self.server.names)})
            return
        prefix = "/leaderboards/"
        if not path.startswith(prefix) or "/" in path[len(prefix) :]:
            self._send(404, {"error": f"no such resource {parts.path!r}; try /leaderboards/<name>"})
            return
        query = parse_qs(parts.query)
        try:
            top_text = query.get("top", ["10"])[-1]
            if not top_text.isdigit():
                raise ValueError(f"top must be an integer from 1 to {MAX_TOP}, got {top_text!r}")
            view = leaderboard_view(
                self.server.store,
                unquote(path[len(prefix) :]),
                top=int(top_text),
                player=query.get("player", [None])[-1],
                period=query.get("period", [None])[-1],
            )
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
        except LeaderboardNotFound as exc:
            self._send(404, {"error": str(exc)})
        except StoreUnavailable as exc:
            log.warning("leaderboard read failed: %s", exc)
            self._send(503, {"error": "leaderboard store unavailable"})
        except StoreError as exc:
            log.warning("leaderboard read failed: %s", exc)
            self._send(500, {"error": "leaderboard store error"})
        else:
            self._send(200, view)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("leaderboard api: " + format, *args)


class LeaderboardServer(ThreadingHTTPServer):
    """The HTTP read path, serving from a daemon thread until :meth:`close`."""

    daemon_threads = True

    def __init__(
        self, store: LeaderboardStore, address: tuple[str, int], names: Sequence[str] = ()
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.names = tuple(names)
        self._thread = threading.Thread(
            target=self.serve_forever, name="leaderboard-api", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on (useful after binding port 0)."""
        return int(self.server_address[1])

    def start(self) -> LeaderboardServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the socket."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()


def serve_leaderboards(
    store: LeaderboardStore, port: int, addr: str = "127.0.0.1", names: Sequence[str] = ()
) -> LeaderboardServer:
    """Serve ``GET /leaderboards/<name>`` on ``addr:port`` from a daemon thread.

    ``names`` are the configured boards listed at ``GET /leaderboards`` (for example
    ``[board.id for board in rules.program.boards]``). Port 0 picks a free port.
    """
    return LeaderboardServer(store, (addr, port), names).start()
