"""Small value types of the campaign YAML: durations, money, percentages, names.

Each is a pydantic-annotated type, so a bad value is reported by the loader with the file,
the path inside it and what was expected, like any other field.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "CURRENCY_DEFAULT",
    "Duration",
    "Identifier",
    "MoneyAmount",
    "Percent",
    "Strict",
    "format_duration",
    "money_units",
    "parse_duration",
]

CURRENCY_DEFAULT: Final = "default"  # the key of a per-currency amount used for the others

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS: Final = (7 * 86_400, 86_400, 3_600, 60, 1)


class Strict(BaseModel):
    """Base of every config model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: Any) -> Any:
    """``"7d"``, ``"1d12h"``, ``"90m"``, ``"45s"``, ``"2w"`` or an int of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '7d', '12h', '30m'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        match = _DURATION.match(text)
        if text and match is not None and any(match.groups()):
            return sum(
                int(part) * unit for part, unit in zip(match.groups(), _UNITS, strict=True) if part
            )
    raise ValueError(
        f"{value!r} is not a duration; write it like '7d', '1d12h', '30m', '45s' or '2w'"
    )


def format_duration(seconds: int) -> str:
    """Seconds as the shortest duration text: 604800 -> ``"7d"``."""
    if seconds == 0:
        return "0s"
    parts = []
    for suffix, unit in zip("dhms", _UNITS[1:], strict=True):
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)


Duration = Annotated[int, BeforeValidator(parse_duration)]
"""A length of time in seconds, written ``7d``, ``12h``, ``30m``, ``45s``, ``2w``."""

Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]


def _currencies(value: dict[str, Decimal]) -> dict[str, Decimal]:
    for key in value:
        if key != CURRENCY_DEFAULT and not re.fullmatch(r"[A-Z]{3}", key):
            raise ValueError(
                f"{key!r} is not a currency code; use ISO 4217 codes (EUR, GBP...) "
                f"and {CURRENCY_DEFAULT!r} for every other currency"
            )
    if CURRENCY_DEFAULT not in value:
        raise ValueError(
            f"a per-currency amount needs a {CURRENCY_DEFAULT!r} for the other currencies"
        )
    return value


MoneyAmount = Money | Annotated[dict[str, Money], AfterValidator(_currencies)]
"""An amount in the player's currency: ``10``, or per currency ``{SEK: 100, default: 10}``."""

Percent = Annotated[Decimal, Field(gt=0, le=1000)]
"""A percentage: ``10`` is 10 %."""

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A lower-case name: campaign, segment and step ids (they appear in action ids)."""


def money_units(amount: Decimal | dict[str, Decimal], currency: str | None) -> int:
    """An amount for a player's ``currency`` as integer ten-thousandths."""
    if isinstance(amount, dict):
        value = amount.get(currency or "", amount[CURRENCY_DEFAULT])
    else:
        value = amount
    return int(value.scaleb(4))
