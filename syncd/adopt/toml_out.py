"""The output of a config import: a syncd TOML text plus one line per setting that
could not be carried over.  A minimal TOML writer for the few value types syncd's
account tables use (strings, booleans, integers, arrays of strings)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Value = str | bool | int | list[str]


@dataclass
class ImportResult:
    """``accounts``: account name -> syncd keys, in the order of the source file.
    ``warnings``: one line per setting not carried over (the CLI prints them on stderr).
    ``adopt``: account name -> its ``[accounts.NAME.adopt]`` keys (where the tool's
    state is, so that the first sync starts from it).
    ``source``: the file read, named in the header comment."""

    source: str
    tool: str
    accounts: dict[str, dict[str, Value]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    adopt: dict[str, dict[str, Value]] = field(default_factory=dict)

    def warn(self, line: str) -> None:
        self.warnings.append(line)

    def to_toml(self) -> str:
        return render(
            self.accounts, f"imported from {self.tool} config {self.source}", adopt=self.adopt
        )


def _string(text: str) -> str:
    # JSON string syntax is valid TOML basic-string syntax.
    return json.dumps(text, ensure_ascii=False)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _string(name)


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    return "[" + ", ".join(_string(v) for v in value) + "]"


def render(
    accounts: Mapping[str, Mapping[str, Value]],
    comment: str,
    *,
    adopt: Mapping[str, Mapping[str, Value]] | None = None,
) -> str:
    lines = [f"# syncd configuration {comment}", "# check it with: syncd --config FILE check", ""]
    for name, keys in accounts.items():
        lines.append(f"[accounts.{_key(name)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in keys.items()]
        lines.append("")
        table = (adopt or {}).get(name)
        if table:
            lines.append(
                f"# where {table.get('tool', 'the tool')} keeps its state: the first sync of "
                "each folder starts from it (nothing copied again)"
            )
            lines.append(f"[accounts.{_key(name)}.adopt]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def shell_command(command: str) -> list[str]:
    """A shell command line (mbsync's PassCmd) as syncd's argv: syncd runs commands
    without a shell, so keep the shell's meaning with ``sh -c``."""
    return ["sh", "-c", command]


def join(items: Sequence[str]) -> str:
    return ", ".join(items)
