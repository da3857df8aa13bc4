"""Personal data kept out of logs: Swedish personal identity numbers masked, device payloads never printed.

A vendor's payload may carry a resident's name or personnummer in a field Vaka does not read; logs are read by
operations and shipped to other systems, so a rejected payload is logged by reason, topic and length only (the
`rejected_messages` dead letter keeps its first bytes for operators, in the database where reads are controlled).
"""

from __future__ import annotations

import re

MASK = "<personnummer>"

# YYYYMMDD-NNNN, YYMMDD-NNNN, YYMMDD+NNNN (100 years or older), and the same without separator; the day may be a
# samordningsnummer day (61-91)
_PNR = re.compile(
    r"(?<!\d)(?:(?:18|19|20)?\d{2})(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])([-+]?)(\d{4})(?!\d)"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group(1):  # written as a personnummer (with - or +): masked even when its check digit is off
        return MASK
    digits = re.sub(r"\D", "", text)
    return MASK if _luhn_ok(digits[-10:]) else text


def mask_identity_numbers(text: str) -> str:
    """`text` with every Swedish personal or coordination number replaced by `<personnummer>`.

    With a separator the date alone decides; ten or twelve bare digits are masked when the check digit holds, so
    timestamps and counters mostly stay readable.
    """
    return _PNR.sub(_mask, text)


def for_log(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters, identity numbers masked and control characters escaped."""
    cut = mask_identity_numbers(text[:limit])
    return cut.encode("unicode_escape", "backslashreplace").decode("ascii", "replace")
