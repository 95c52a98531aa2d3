"""The ``syncd`` console script: :func:`main`.

Light on purpose: importing this module loads neither click nor the config
reader.  A plain ``syncd sync [ACCOUNT...]`` while a daemon runs the config is
relayed by :mod:`syncd.cli.ride` over the daemon's control socket without them
(most of such a command's time was Python importing them); everything else,
and anything unusual, goes to the click application, :mod:`syncd.cli.app`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point: the exit status (see :mod:`syncd.cli.common`)."""
    from syncd.cli.ride import fast_ride

    code = fast_ride(sys.argv[1:] if argv is None else argv)
    if code is not None:
        return code
    from syncd.cli.app import run

    return run(argv)


def __getattr__(name: str) -> object:
    # `syncd.cli.main.cli`, the click group, as before the split (loaded when asked for).
    if name == "cli":
        from syncd.cli.app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
