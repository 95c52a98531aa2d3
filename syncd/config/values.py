"""Value parsing for the config: durations, host names, paths, argv, and the
one-line renderings problems use (``(got ...)``, key paths, "did you mean").

Every parser raises ``ValueError`` with a one-line message that names neither the
key nor the file: the reader (:mod:`syncd.config.load`) adds those.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Final

# --------------------------------------------------------------------------- durations

_DURATION_UNITS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "ms": 0.001,
        "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
        "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
        "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
        "d": 86400, "day": 86400, "days": 86400,
    }
)  # fmt: skip
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_NUMBER_RE: Final = re.compile(_NUMBER)
_DURATION_PART_RE: Final = re.compile(rf"\s*({_NUMBER})\s*([a-z]+)")
_DURATION_HINT: Final = 'use seconds, or a number with a unit: "90s", "5m", "1h", "1h30m"'


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"90"``, ``"90s"``, ``"5m"``, ``"1h30m"``.

    Units: ms, s, m, h, d (and their spelled-out forms); parts add up.  Raises
    ``ValueError`` (one line, no key or file) for anything else, including
    booleans, negative, infinite or NaN values.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a number of seconds or a duration string ({describe(value)})")
    if isinstance(value, str):
        text = value.strip().lower()
        if _BARE_NUMBER_RE.fullmatch(text):
            seconds = float(text)
        else:
            seconds = 0.0
            pos = 0
            while pos < len(text):
                match = _DURATION_PART_RE.match(text, pos)
                if match is None or match.group(2) not in _DURATION_UNITS:
                    raise ValueError(f"not a duration: {quote(value)} ({_DURATION_HINT})")
                seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
                pos = match.end()
            if pos == 0:  # empty or blank string
                raise ValueError(f"not a duration: {quote(value)} ({_DURATION_HINT})")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a finite, non-negative duration (got {describe(value)})")
    return seconds


def format_duration(seconds: float) -> str:
    """A short display form (``"1h30m"``); ``parse_duration`` reads whole seconds back exactly."""
    if seconds != int(seconds):
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# --------------------------------------------------------------------------- helpers


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (also IPv4-mapped), by name only.

    Only the literal name ``localhost`` counts: other names could resolve anywhere.
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def quote(text: str) -> str:
    # JSON string syntax is TOML's basic-string syntax, and it keeps a message on one line.
    return json.dumps(text, ensure_ascii=False)


def describe(value: object) -> str:
    """A TOML-ish rendering of *value* for ``(got ...)``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"a date/time {value.isoformat()}"
    return type(value).__name__


def toml_key(*parts: str) -> str:
    """A key path as TOML would write it: ``accounts.work.tls``, ``accounts."a.b".tls``."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else quote(p) for p in parts)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {quote(close[0])}?)" if close else ""


_VAR_RE: Final = re.compile(r"\$(?:(\w+)|\{([^}]*)\})")


def expand_path(raw: str, base: Path, environ: Mapping[str, str]) -> Path:
    """Expand ``$VAR``, ``${VAR}`` and ``~``; anchor a relative path at *base*."""
    if not raw:
        raise ValueError("must not be empty")
    if "\0" in raw:
        raise ValueError("must not contain a NUL character")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ:
            raise ValueError(f"uses ${name}, which is not set in the environment")
        return environ[name]

    expanded = Path(_VAR_RE.sub(substitute, raw))
    try:
        expanded = expanded.expanduser()
    except RuntimeError:  # "~user" of an unknown user, or no $HOME
        raise ValueError(f"cannot expand {expanded.parts[0]}") from None
    return Path(os.path.normpath(base / expanded))


def same_or_inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def argv(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
            raise ValueError(f"cannot split into arguments: {exc}") from None
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        argv = tuple(value)
    else:
        raise ValueError(f"must be a string or an array of strings (got {describe(value)})")
    if not argv or not argv[0]:
        raise ValueError("must name a command")
    return argv


def valid_host(host: str) -> bool:
    if any(c.isspace() or c in "/\\@\0" for c in host):
        return False
    if ":" in host:  # only an IPv6 address may contain colons ("host:993" is a mistake)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    return True
