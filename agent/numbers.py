"""What a dialled string is: a phone number or a colleague's address, and if a number, its
country and type by libphonenumber's metadata, read as the user in their region means it.
The fraud guard (agent.fraud) judges dials by it; the dial pad shows it as you type.
"""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import dataclass

SATELLITE_CODES = frozenset({870, 881, 882})  # Inmarsat, GMSS, international networks
# libphonenumber's number types (PhoneNumberType attribute names) as the guard names them.
_TYPES = {
    "PREMIUM_RATE": "premium_rate",
    "SHARED_COST": "shared_cost",
    "TOLL_FREE": "toll_free",
    "MOBILE": "mobile",
    "FIXED_LINE": "fixed_line",
    "FIXED_LINE_OR_MOBILE": "fixed_line_or_mobile",
    "VOIP": "voip",
    "PERSONAL_NUMBER": "personal",
    "PAGER": "pager",
    "UAN": "uan",
    "VOICEMAIL": "voicemail",
}


@dataclass(frozen=True)
class Number:
    dialed: str
    e164: str | None
    country: str | None
    kind: str  # premium_rate, shared_cost, satellite, mobile, ..., unknown, invalid
    emergency: bool
    international: bool


def is_phone_number(target: str) -> bool:
    """A dial string (digits, +, spaces, dashes) rather than a SIP URI."""
    text = target.strip()
    return (
        bool(text)
        and not text.startswith(("sip:", "sips:"))
        and all(c.isdigit() or c in "+ -()./" for c in text)
    )


def dialed_number(target: str) -> str | None:
    """The phone number a dial reaches, if it reaches one: the dial string itself, or the user
    part of a sip:, sips: or tel: URI that is a number (sip:+1900...@x;user=phone is a premium
    call as much as +1900... is). None for a colleague's address (sip:bob@company)."""
    text = target.strip()
    if is_phone_number(text):
        return text
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips", "tel"):
        return None
    user = rest.split("@", 1)[0].split(";", 1)[0].split("?", 1)[0]
    user = urllib.parse.unquote(user)
    return user if is_phone_number(user) and any(c.isdigit() for c in user) else None


@functools.cache
def _type_names() -> dict[int, str]:
    from phonenumbers import PhoneNumberType

    return {getattr(PhoneNumberType, attr): name for attr, name in _TYPES.items()}


def classify(dialed: str, region: str) -> Number:
    """What a dialed string is, read as the user in `region` would mean it."""
    # libphonenumber is loaded by the first number judged, not by every start (~9 ms before
    # the REGISTER, for a dial that may not come); afterwards this is a dictionary lookup.
    import phonenumbers
    from phonenumbers import shortnumberinfo

    text = dialed.strip()
    emergency = shortnumberinfo.is_emergency_number(text, region)
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Number(dialed, None, None, "invalid", emergency, False)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    country = phonenumbers.region_code_for_number(parsed)
    international = country != region
    if parsed.country_code in SATELLITE_CODES:
        kind = "satellite"
    elif not phonenumbers.is_valid_number(parsed):
        kind = "invalid"
    else:
        kind = _type_names().get(phonenumbers.number_type(parsed), "unknown")
    return Number(dialed, e164, country, kind, emergency, international)
