"""syncd: keep local Maildirs and IMAP accounts in step, in both directions."""

import os
import sys
import types

__version__ = "0.1.0"


def _imapclient_without_metadata() -> None:
    """imapclient's ``__init__`` asks :mod:`importlib.metadata` for its own version:
    importing that and scanning the installed distributions is ~10 ms of every run's
    start, and nothing reads the answer.  Hand it the version its ``.dist-info``
    directory is named after instead, when that sits beside the package; any other
    name the module is asked for comes from the real one.  Without such a
    directory imapclient does as it always did."""
    if "imapclient" in sys.modules:
        return
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")  # noqa: PTH208 - before pathlib is imported
        except OSError:
            continue
        if "imapclient" not in names:
            continue
        for name in names:
            low = name.lower()
            if low.startswith("imapclient-") and low.endswith(".dist-info"):
                version = name[len("imapclient-") : -len(".dist-info")]
                parts = version.split(".")
                if len(parts) == 3 and all(p.isdigit() for p in parts):
                    sys.modules["imapclient.version"] = _version_module(
                        version, f"{entry or '.'}/imapclient/version.py"
                    )
        return


def _version_module(version: str, real: str) -> types.ModuleType:
    module = types.ModuleType("imapclient.version")
    major, minor, micro = (int(p) for p in version.split("."))
    module.__dict__.update(version=version, version_info=(major, minor, micro, "final"))

    def fallback(name: str) -> object:  # a name a later imapclient may add
        if name.startswith("__"):
            raise AttributeError(name)  # the import system's own questions
        import importlib.util

        spec = importlib.util.spec_from_file_location("imapclient._version", real)
        if spec is None or spec.loader is None:
            raise AttributeError(name)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return getattr(loaded, name)

    module.__dict__["__getattr__"] = fallback
    return module


_imapclient_without_metadata()
