"""Billing arithmetic (pure): prices in cents, billing cycles, the volume discount.

- List price: $9.99 per user (license in use) per month.
- Once an account reaches 51 users, the price is $7.49 per user from the next
  billing cycle: the price for a tally date is $7.49 when the account had at
  least 51 licenses in use on the previous cycle's tally date (one month
  earlier, same day, clamped to the month's end), else $9.99.
"""

from __future__ import annotations

import calendar
from datetime import date

LIST_PRICE_CENTS = 999
VOLUME_PRICE_CENTS = 749
VOLUME_THRESHOLD_USERS = 51


def previous_cycle(tally: date) -> date:
    """The tally date one monthly billing cycle earlier."""
    year, month = (tally.year, tally.month - 1) if tally.month > 1 else (tally.year - 1, 12)
    return date(year, month, min(tally.day, calendar.monthrange(year, month)[1]))


def unit_price_cents(previous_cycle_users: int) -> int:
    if previous_cycle_users >= VOLUME_THRESHOLD_USERS:
        return VOLUME_PRICE_CENTS
    return LIST_PRICE_CENTS


def dollars(cents: int) -> str:
    """Cents as a dollar amount string with two decimals ("1234.50")."""
    return f"{cents // 100}.{cents % 100:02d}"
