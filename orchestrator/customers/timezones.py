"""A customer's time zone, and where we learnt it.

Quiet hours are checked in the recipient's local time. A `timezone` trait says it outright;
without one, the phone number usually tells (a +1 415 number is in California): libphonenumber
maps each country, and within a country with several zones each area code, to its zones.
Only when nothing is known does a customer live in UTC.
"""

from __future__ import annotations

from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

UNKNOWN_ZONE = "Etc/Unknown"  # what libphonenumber answers when the number tells nothing


def local_zone(name: str | None) -> ZoneInfo:
    """The zone a customer's local time is read in (quiet hours, frequency-cap days): theirs,
    or UTC when it is unknown or not a zone this machine knows."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class TimezoneSource(StrEnum):
    trait = "trait"  # the customer (or the app) said so
    phone = "phone"  # the number's country or area code maps to exactly this zone
    phone_country = (
        "phone_country"  # several zones fit the number (a mobile or toll-free range): the country's main one
    )


def zone_from_phone(number: str | None) -> tuple[str, TimezoneSource] | None:
    """The zone a phone number (E.164, or `whatsapp:+…`) points to, or None if it tells nothing."""
    if not number:
        return None
    try:
        parsed = phonenumbers.parse(number.removeprefix("whatsapp:"), None)
    except phonenumbers.NumberParseException:
        return None
    zones = _known(phone_timezones.time_zones_for_number(parsed))
    if len(zones) == 1:
        return zones[0], TimezoneSource.phone
    if not zones:
        return None
    main = _main_zone(phonenumbers.region_code_for_number(parsed))
    return (main if main in zones else zones[0]), TimezoneSource.phone_country


def _known(zones) -> list[str]:
    return [zone for zone in zones if zone != UNKNOWN_ZONE]


def _main_zone(region: str | None) -> str | None:
    """A country's main zone: where libphonenumber's example landline is (New York for the US,
    Madrid for Spain), not the first of the list in alphabetical order (America/Adak, Atlantic/Canary)."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.FIXED_LINE) if region else None
    zones = _known(phone_timezones.time_zones_for_number(example)) if example else []
    return zones[0] if zones else None


def infer_timezone(customer) -> None:
    """Fill in a customer's zone from their number, unless a trait already gave one."""
    if customer.timezone_source == TimezoneSource.trait:
        return
    inferred = zone_from_phone(customer.phone) or zone_from_phone(customer.whatsapp)
    if inferred is None:
        customer.timezone, customer.timezone_source = None, None
    else:
        customer.timezone, customer.timezone_source = inferred
