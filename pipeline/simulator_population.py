"""Who plays in the simulated casino: archetypes, markets and per-player state.

The simulator (``pipeline.simulator``) drives these players through time; this module only
describes them. Money is held in integer cents of the player's own currency, and every
``stake`` and ``deposit`` below is in euro-like major units, scaled per currency.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

Category = str  # one of pipeline.events.GameCategory's values


@dataclass(frozen=True, slots=True)
class Archetype:
    """One kind of player and how it behaves; ``weight`` is its share of the population."""

    name: str
    weight: float
    sessions_per_week: float
    rounds_per_session: float
    stake: float  # typical stake per round, major units
    deposit: float  # typical deposit, major units
    max_deposits_per_session: int  # 0: never deposits
    categories: tuple[tuple[Category, float], ...]
    hours: tuple[int, ...]  # local session start hours; repeat an hour to weight it
    think_s: float  # mean seconds between rounds
    weekend_bias: float = 0.0  # chance a session moves to Saturday or Sunday
    active_days: tuple[float, float] | None = None  # churners go quiet for good after this
    max_sessions: int | None = None  # at most this many sessions, ever (drawn 0..max)
    withdraw_prob: float = 0.1
    bonus_prob: float = 0.02  # chance per session to redeem a bonus code
    chases_losses: bool = False  # at-risk: raise stakes and redeposit fast, night sessions


_EVENING = (12, 14, 16, 17, 18, 19, 19, 20, 20, 20, 21, 21, 21, 22, 22, 23)
_NIGHT = (0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 22, 23, 23)
_ANY = (*range(8, 24), 0, 1)

ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("whale", 0.02, 6.0, 120, 40.0, 1000.0, 4,
              (("slots", 0.5), ("live", 0.3), ("table", 0.2)), _ANY, 6.0,
              withdraw_prob=0.5),
    Archetype("slots_regular", 0.38, 4.0, 80, 1.0, 50.0, 1,
              (("slots", 0.85), ("other", 0.1), ("live", 0.05)), _EVENING, 5.0,
              withdraw_prob=0.15),
    Archetype("weekend_sports", 0.15, 4.0, 15, 10.0, 50.0, 1,
              (("sports", 0.9), ("slots", 0.1)), (12, 13, 14, 15, 16, 17, 18, 19, 20, 21),
              180.0, weekend_bias=0.9, withdraw_prob=0.3),
    Archetype("bonus_hunter", 0.10, 3.0, 15, 0.5, 20.0, 1, (("slots", 1.0),), _ANY, 5.0,
              withdraw_prob=0.8, bonus_prob=0.8),
    Archetype("churner", 0.15, 5.0, 50, 1.0, 30.0, 1,
              (("slots", 0.7), ("other", 0.2), ("table", 0.1)), _EVENING, 5.0,
              active_days=(2.0, 12.0)),
    Archetype("never_deposit", 0.12, 2.0, 0, 1.0, 0.0, 0, (("slots", 1.0),), _ANY, 5.0,
              max_sessions=2, bonus_prob=0.0),
    Archetype("at_risk", 0.08, 6.0, 100, 4.0, 40.0, 6,
              (("slots", 0.7), ("live", 0.2), ("table", 0.1)), _NIGHT, 4.0,
              withdraw_prob=0.05, chases_losses=True),
)  # fmt: skip

# country, currency, IANA zone, locales, currency scale vs EUR, payment methods, weight
_MARKETS: tuple[tuple[str, str, str, tuple[str, ...], int, tuple[str, ...], float], ...] = (
    ("GB", "GBP", "Europe/London", ("en",), 1, ("card", "paypal", "open_banking"), 0.18),
    ("DE", "EUR", "Europe/Berlin", ("de", "en"), 1, ("card", "paypal", "sofort"), 0.15),
    ("SE", "SEK", "Europe/Stockholm", ("sv", "en"), 10, ("trustly", "card", "swish"), 0.10),
    ("FI", "EUR", "Europe/Helsinki", ("fi", "sv"), 1, ("trustly", "card"), 0.08),
    ("NO", "NOK", "Europe/Oslo", ("nb", "en"), 10, ("card", "trustly"), 0.06),
    ("CA", "CAD", "America/Toronto", ("en", "fr"), 1, ("interac", "card"), 0.12),
    ("BR", "BRL", "America/Sao_Paulo", ("pt",), 5, ("pix", "card"), 0.14),
    ("IE", "EUR", "Europe/Dublin", ("en",), 1, ("card", "paypal"), 0.04),
    ("AT", "EUR", "Europe/Vienna", ("de",), 1, ("card", "paysafecard"), 0.04),
    ("EE", "EUR", "Europe/Tallinn", ("et", "ru", "en"), 1, ("card", "skrill"), 0.03),
    ("NZ", "NZD", "Pacific/Auckland", ("en",), 1, ("card", "poli"), 0.03),
    ("MT", "EUR", "Europe/Malta", ("en",), 1, ("card", "skrill", "neteller"), 0.03),
)
_CHANNELS = (
    "organic",
    "organic",
    "affiliate",
    "affiliate",
    "paid_social",
    "paid_search",
    "referral",
)
_DEVICES = (b"ios", b"android", b"android", b"desktop", b"mobile_web")
GAMES: dict[bytes, tuple[bytes, ...]] = {
    b"slots": (b"book_of_dead", b"starburst", b"sweet_bonanza", b"gates_of_olympus", b"big_bass"),
    b"live": (b"lightning_roulette", b"crazy_time", b"live_blackjack"),
    b"table": (b"european_roulette", b"blackjack_classic", b"baccarat"),
    b"sports": (b"sb_football", b"sb_tennis", b"sb_ice_hockey", b"sb_basketball"),
    b"other": (b"aviator", b"plinko", b"keno"),
}
_CONSENT_RATES = (0.7, 0.35, 0.5, 0.85)  # email, sms, push, in_app
_CODES = ("WELCOME100", "RELOAD50", "FREESPINS20", "CASHBACK10", "WEEKEND25")
_CAMPAIGNS = ("cmp_welcome", "cmp_reload", None)
CONSENT_CHANNELS = ("email", "sms", "push", "in_app")


@dataclass(frozen=True, slots=True)
class Market:
    """A country the casino serves, with what a player from there registers with."""

    country: str
    currency: bytes
    timezone: str
    utc_offset_s: int  # at the simulation start; the simulator ignores DST changes
    locales: tuple[str, ...]
    scale: int
    methods: tuple[bytes, ...]


def markets_at(start: datetime) -> tuple[tuple[Market, ...], tuple[float, ...]]:
    """The markets with their UTC offsets at ``start``, and their cumulative weights."""
    found: list[Market] = []
    cumulative: list[float] = []
    total = 0.0
    for country, currency, zone, locales, scale, methods, weight in _MARKETS:
        offset = ZoneInfo(zone).utcoffset(start.replace(tzinfo=None))
        seconds = int(offset.total_seconds()) if offset is not None else 0
        found.append(
            Market(country, currency.encode(), zone, seconds, locales, scale,
                   tuple(m.encode() for m in methods))
        )  # fmt: skip
        total += weight
        cumulative.append(total)
    return tuple(found), tuple(c / total for c in cumulative)


class Player:
    """Mutable simulation state of one player: bounded, a few dozen fields."""

    __slots__ = (
        "active_until", "arch", "balance", "bet", "bonus", "cat", "categories", "consents",
        "device", "excluded_until", "game", "idx", "last_deposit", "market", "pid", "queue",
        "round_id", "round_stake", "rounds_left", "session_deposits", "session_id", "sessions",
        "sessions_cap", "stake", "state", "suffix", "ts_offset", "tz",
    )  # fmt: skip

    def __init__(self, idx: int, arch: Archetype, market: Market, rng: random.Random) -> None:
        self.idx = idx
        self.pid = b"p%06d" % idx
        self.arch = arch
        self.market = market
        self.tz = market.utc_offset_s
        # Some players come through a platform that stamps local time with an offset.
        local = rng.random() < 0.15
        self.ts_offset = self.tz if local else 0
        self.suffix = _offset_suffix(self.tz) if local else b"Z"
        total = sum(weight for _, weight in arch.categories)
        running = 0.0
        categories: list[tuple[float, bytes]] = []
        for category, weight in arch.categories:
            running += weight
            categories.append((running / total, category.encode()))
        self.categories = tuple(categories)
        base = arch.stake * market.scale * (0.5 + rng.random()) * 100
        self.stake = max(10, int(base) // 10 * 10)  # cents, rounded to 10 cents
        self.bet = self.stake
        self.balance = 0
        self.bonus = 0
        self.last_deposit = 0
        self.session_deposits = 0
        self.sessions = 0
        self.sessions_cap = arch.max_sessions
        if arch.max_sessions is not None:
            self.sessions_cap = int(rng.random() * (arch.max_sessions + 1))
        self.state = 0
        self.session_id = 0
        self.rounds_left = 0
        self.round_id = 0
        self.round_stake = 0
        self.cat = categories[0][1]
        self.game = GAMES[self.cat][0]
        self.device = _DEVICES[int(rng.random() * len(_DEVICES))]
        self.consents = [rng.random() < rate for rate in _CONSENT_RATES]
        self.queue: list[int] = []
        self.active_until: int | None = None
        self.excluded_until: int | None = None

    def pick_game(self, rng: random.Random) -> None:
        """Choose the category and game for the next rounds from the archetype's mix."""
        u = rng.random()
        category = self.categories[-1][1]
        for threshold, candidate in self.categories:
            if u < threshold:
                category = candidate
                break
        self.cat = category
        games = GAMES[category]
        self.game = games[int(rng.random() * len(games))]

    def registration(self, rng: random.Random, base_year: int) -> dict[str, object]:
        """The fields of this player's registration event beyond the common four."""
        market = self.market
        age = 19 + int(rng.random() ** 1.8 * 55)  # >= 18 on any day of the simulation
        month, day = 1 + int(rng.random() * 12), 1 + int(rng.random() * 28)
        birth = f"{base_year - age:04d}-{month:02d}-{day:02d}"
        fields: dict[str, object] = {
            "country": market.country,
            "currency": market.currency.decode(),
            "timezone": market.timezone,
            "channel": _CHANNELS[int(rng.random() * len(_CHANNELS))],
            "consents": dict(zip(CONSENT_CHANNELS, self.consents, strict=True)),
            "birth_date": birth,
        }
        if rng.random() < 0.95:
            fields["locale"] = market.locales[int(rng.random() * len(market.locales))]
        return fields

    def bonus_fields(self, rng: random.Random) -> dict[str, object]:
        """A ``bonus_redeemed`` event's fields: a promo code, sometimes with its campaign."""
        fields: dict[str, object] = {"code": rng.choice(_CODES)}
        campaign = rng.choice(_CAMPAIGNS)
        if campaign is not None:
            fields["campaign_id"] = campaign
        return fields

    def consent_fields(self, rng: random.Random) -> dict[str, object]:
        """Flip one channel's consent and describe the change as ``consent_change`` fields."""
        i = int(rng.random() * len(CONSENT_CHANNELS))
        self.consents[i] = not self.consents[i]
        fields: dict[str, object] = {"channel": CONSENT_CHANNELS[i], "granted": self.consents[i]}
        if rng.random() < 0.3:
            fields["product"] = "sports" if self.cat == b"sports" else "casino"
        return fields

    def profile_fields(self, rng: random.Random) -> dict[str, object]:
        """A ``profile_update`` event's fields: simple attributes, sometimes a VIP level."""
        attributes = {
            "favourite_game": self.game.decode(),
            "kyc_verified": rng.random() < 0.8,
            "newsletter": rng.choice(("weekly", "monthly", None)),
        }
        fields: dict[str, object] = {"attributes": attributes}
        if self.arch.name == "whale":
            fields["vip_level"] = rng.choice(("gold", "platinum"))
        elif rng.random() < 0.5:
            fields["vip_level"] = 1 + int(rng.random() * 3)
        return fields

    def limit_fields(self, rng: random.Random) -> dict[str, object]:
        """A ``limit_change`` event's fields; a session limit's amount is in minutes."""
        kind = rng.choice(("deposit", "loss", "session"))
        if kind == "session":
            amount = 60 * (1 + int(rng.random() * 4))
        else:
            amount = 50 * self.market.scale * (1 + int(rng.random() * 10))
        return {"kind": kind, "amount": str(amount), "period": rng.choice(("day", "week", "month"))}


def _offset_suffix(seconds: int) -> bytes:
    sign = b"+" if seconds >= 0 else b"-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return sign + b"%02d:%02d" % (hours, minutes)


def allocate(players: int, rng: random.Random) -> list[Archetype]:
    """Archetypes for ``players`` players: weights respected, each present once there is room."""
    total = sum(a.weight for a in ARCHETYPES)
    floor = 1 if players >= len(ARCHETYPES) else 0
    counts = [max(floor, int(players * a.weight / total)) for a in ARCHETYPES]
    order = sorted(
        range(len(ARCHETYPES)), key=lambda i: players * ARCHETYPES[i].weight / total - counts[i]
    )
    i = 0
    while sum(counts) < players:  # hand the remainder to the largest fractional parts
        counts[order[-1 - i % len(order)]] += 1
        i += 1
    while sum(counts) > players:  # the floor overshot: take from the most common
        counts[counts.index(max(counts))] -= 1
    chosen = [a for a, n in zip(ARCHETYPES, counts, strict=True) for _ in range(n)]
    rng.shuffle(chosen)
    return chosen
