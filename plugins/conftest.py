"""Make the shipped plugins' modules importable when their tests run from a source
checkout (``pytest plugins``, or one plugin's ``tests/``): they are not installed
into the development virtualenv.  One conftest for all four plugins."""

from __future__ import annotations

import sys
from pathlib import Path

for plugin in sorted(Path(__file__).resolve().parent.glob("syncd-*")):
    if plugin.is_dir() and str(plugin) not in sys.path:
        sys.path.insert(0, str(plugin))
