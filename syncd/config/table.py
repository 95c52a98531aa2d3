"""Typed access to a TOML table: every bad value becomes a one-line problem
``FILE: KEY.PATH: what is wrong`` and a default, so one read reports them all."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from syncd.config.values import describe, expand_path, parse_duration, quote, suggest, toml_key

_T = TypeVar("_T")


class Problems:
    """Collects one-line problems ``FILE: KEY: message`` in the order found."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.file}: {key}: {message}")

    def add_file(self, message: str) -> None:
        self.lines.append(f"{self.file}: {message}")


class Table:
    """Typed access to one TOML table; every bad value becomes a problem and a default."""

    def __init__(
        self,
        problems: Problems,
        prefix: tuple[str, ...],
        data: Mapping[str, Any],
        allowed: Iterable[str],
    ) -> None:
        self.problems = problems
        self.prefix = prefix
        self.data = data
        self.allowed = tuple(allowed)

    def key(self, name: str) -> str:
        return toml_key(*self.prefix, name)

    def problem(self, name: str, message: str) -> None:
        self.problems.add(self.key(name), message)

    def check_unknown(self, special: Mapping[str, str] = MappingProxyType({})) -> None:
        for name in self.data:
            if name in special:
                self.problem(name, special[name])
            elif name not in self.allowed:
                self.problem(name, "unknown key" + suggest(name, self.allowed))

    def get(
        self, name: str, default: _T, convert: Callable[[object], _T], *, required: bool = False
    ) -> _T:
        if name not in self.data:
            if required:
                self.problem(name, "required key is missing")
            return default
        try:
            return convert(self.data[name])
        except ValueError as exc:
            self.problem(name, str(exc))
            return default

    def string(self, name: str, default: str = "", *, required: bool = False) -> str:
        def convert(value: object) -> str:
            if not isinstance(value, str):
                raise ValueError(f"must be a string (got {describe(value)})")
            if not value.strip():
                raise ValueError("must not be empty")
            return value

        return self.get(name, default, convert, required=required)

    def optional_string(self, name: str) -> str | None:
        return self.string(name) if name in self.data else None

    def boolean(self, name: str, default: bool) -> bool:
        def convert(value: object) -> bool:
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, without quotes (got {describe(value)})")
            return value

        return self.get(name, default, convert)

    def integer(self, name: str, default: _T, low: int, high: int | None = None) -> int | _T:
        def convert(value: object) -> int | _T:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"must be a whole number (got {describe(value)})")
            if value < low or (high is not None and value > high):
                bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
                raise ValueError(f"must be {bounds} (got {value})")
            return value

        fallback: int | _T = default
        return self.get(name, fallback, convert)

    def duration(self, name: str, default: float) -> float:
        def convert(value: object) -> float:
            seconds = parse_duration(value)
            if seconds <= 0:
                raise ValueError(f"must be longer than zero (got {describe(value)})")
            return seconds

        return self.get(name, default, convert)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        def convert(value: object) -> str:
            if value not in choices:
                allowed = ", ".join(quote(c) for c in choices)
                raise ValueError(f"must be one of {allowed} (got {describe(value)})")
            return value

        return self.get(name, choices[0], convert)

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        def convert(value: object) -> tuple[str, ...]:
            if not isinstance(value, list):
                raise ValueError(f"must be an array of strings (got {describe(value)})")
            for item in value:
                if not isinstance(item, str) or not item:
                    raise ValueError(
                        f"must be an array of non-empty strings (found {describe(item)})"
                    )
            return tuple(value)

        return self.get(name, default, convert)

    def path(self, name: str, base: Path, *, required: bool = False) -> Path | None:
        def convert(value: object) -> Path:
            if not isinstance(value, str):
                raise ValueError(f"must be a path string (got {describe(value)})")
            return expand_path(value, base, os.environ)

        return self.get(name, None, convert, required=required)
