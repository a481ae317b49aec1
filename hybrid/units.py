"""Sizes, bitrates and durations: parsing and formatting.

MB is 10^6 bytes and MiB is 2^20 bytes, as the SI and IEC say; a bare "M" means MB. Sizes are bytes,
so a lower-case "b" in a size ("50mb") still means bytes: nobody asks for a file in megabits.
Bitrates are bits per second ("128k" = 128,000 b/s).
"""

from __future__ import annotations

import math
import re

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:[.,]\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse a size such as ``50MB``, ``50 MB``, ``49.5mb``, ``50MiB``, ``800KB`` or ``1048576``.

    Returns whole bytes (rounded down, so a parsed target is never larger than what was asked).
    Raises ``ValueError`` with a readable message on anything else.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 50MB, 49.5MB, 50MiB, 800KB or a byte count)")
    number = float(match.group(1).replace(",", "."))
    unit = match.group(2).lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit {match.group(2)!r} in {text!r} (use KB, MB, GB, KiB, MiB, GiB)")
    size = math.floor(number * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size must be more than zero: {text!r}")
    return size


def format_size(size_bytes: float) -> str:
    """``25000000`` -> ``"25.0 MB"``; small sizes in kB, tiny ones in bytes."""
    if size_bytes >= 10**9:
        return f"{size_bytes / 10**9:.2f} GB"
    if size_bytes >= 10**6:
        return f"{size_bytes / 10**6:.2f} MB"
    if size_bytes >= 10**3:
        return f"{size_bytes / 10**3:.1f} kB"
    return f"{int(size_bytes)} B"


def format_size_both(size_bytes: float) -> str:
    """A size in decimal and binary units: ``"25.00 MB (23.84 MiB)"``."""
    if size_bytes >= 2**30:
        binary = f"{size_bytes / 2**30:.2f} GiB"
    elif size_bytes >= 2**20:
        binary = f"{size_bytes / 2**20:.2f} MiB"
    else:
        binary = f"{size_bytes / 2**10:.1f} KiB"
    return f"{format_size(size_bytes)} ({binary})"


_BITRATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:b(?:it)?(?:ps|/s)?)?\s*$", re.IGNORECASE)


def parse_bitrate(text: str) -> int:
    """Parse a bitrate such as ``128k``, ``128 kb/s``, ``2.5M``, ``96000`` into bits per second."""
    match = _BITRATE_RE.match(text)
    if not match:
        raise ValueError(f"not a bitrate: {text!r} (try 128k, 96kb/s or 2.5M)")
    factor = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    value = round(float(match.group(1)) * factor)
    if value <= 0:
        raise ValueError(f"a bitrate must be more than zero: {text!r}")
    return value


def format_bitrate(bps: float) -> str:
    """``1100000`` -> ``"1.1 Mb/s"``, ``96000`` -> ``"96 kb/s"``."""
    if bps >= 10**6:
        return f"{bps / 10**6:.2f} Mb/s".replace(".00 ", " ")
    if bps >= 10**3:
        return f"{bps / 10**3:.0f} kb/s"
    return f"{bps:.0f} b/s"


_CLOCK_RE = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")
_SECONDS_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*$", re.I
)


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``1.5 min``, ``1:30`` or ``0:01:30.5`` into seconds."""
    clock = _CLOCK_RE.match(text)
    if clock:
        hours = int(clock.group(1) or 0)
        return hours * 3600 + int(clock.group(2)) * 60 + float(clock.group(3))
    match = _SECONDS_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (try 30, 30s, 1:30 or 2min)")
    value = float(match.group(1))
    unit = (match.group(2) or "s").lower()
    if unit.startswith("h"):
        return value * 3600
    if unit.startswith("m"):
        return value * 60
    return value


def format_duration(seconds: float) -> str:
    """``130`` -> ``"2m10s"``; ``8.3`` -> ``"8.3 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"
