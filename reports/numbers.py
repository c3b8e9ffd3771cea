"""Rounding for people: half up (四舍五入), as Chinese statistical reports round.

Python's round() rounds half to even and works on the binary value, so 34 / 16 = 2.125
would read 2.12 and 1.005 would read 1.0; a report handed upward must say 2.13 and 1.01.
The value is taken at its shortest decimal form (repr) and rounded as decimal text.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def _decimal(value: float | int, digits: int, scale: int = 0) -> Decimal:
    d = Decimal(repr(float(value))).scaleb(scale).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return d if d != 0 else abs(d)  # never "-0.00"


def round_half_up(value: float | int | None, digits: int = 2) -> float | None:
    """`value` rounded half up to `digits` decimals (None stays None)."""
    return None if value is None else float(_decimal(value, digits))


def fixed(value: float | int, digits: int) -> str:
    """Text with exactly `digits` decimals, rounded half up: fixed(2.125, 2) == '2.13'."""
    return str(_decimal(value, digits))


def percent(share: float | int, digits: int = 1) -> str:
    """A share (0..1) as a percentage, rounded half up: percent(0.0125) == '1.3%'."""
    return f"{_decimal(share, digits, scale=2)}%"
