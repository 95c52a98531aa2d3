"""Calls into plugins, each on its own and with a deadline: the :class:`Plugins`
facade over ``pm.hook``.

It calls each implementation separately, checks what it returns, and isolates a
plugin that raises, returns garbage or does not return within ``[plugins]
timeout`` seconds (named in the log, skipped for the rest of the account's run,
counted as a failure).  The calls run on one long-lived worker thread
(:class:`_CallThread`) that is abandoned when a call overruns.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any, Final

import pluggy

from syncd.ext.types import AccountInfo, Action, Rule, SyncSummary

# The name the plugin module had before the package split: users' log filters use it.
logger = logging.getLogger("syncd.plugins")

#: The built-in TOML rules plugin's name (its rules are shown without a prefix).
BUILTIN_RULES: Final = "rules"
#: Seconds one plugin call may take before it is abandoned (``[plugins] timeout``).
DEFAULT_TIMEOUT: Final = 30.0
_FIELD_RE: Final = re.compile(r"[!-9;-~]+")


LOADED: Final = "loaded"
DISABLED: Final = "disabled"
FAILED: Final = "failed"
NOT_ENABLED: Final = "not enabled"
NOT_INSTALLED: Final = "not installed"
IGNORED: Final = "ignored"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin for ``syncd plugins``.

    ``status`` is one of ``loaded``, ``disabled`` (``[plugins] disable``),
    ``failed`` (``problem`` says why; counts as a failure of every run),
    ``not enabled`` (an installed entry point that ``[plugins] enable`` does not
    name: never imported), ``not installed`` (named in ``enable``, provided by
    nothing) or ``ignored`` (an entry point with a reserved name: never
    imported).  ``note`` is advice for the user that is not a failure.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    status: str
    problem: str | None = None
    note: str | None = None


# --------------------------------------------------------------------------- calls with a deadline


class _Timeout(Exception):
    """A plugin call did not return in time (internal to the facade)."""


_Job = tuple[Callable[..., Any], tuple[Any, ...]]


class _CallThread:
    """One long-lived daemon thread that runs plugin calls one at a time, so that the
    caller can stop waiting for a call that never returns.

    Python cannot kill a thread: a call that overruns is *abandoned* — the caller
    stops waiting, this thread is never used again and ends by itself if the call
    ever returns.  Hand-written rather than ``concurrent.futures``: the
    ThreadPoolExecutor's workers are joined at interpreter exit, so one stuck
    plugin would keep ``syncd sync`` from exiting; and one thread per call would
    cost too much for ``syncd_classify``, which runs once per new message.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self.abandoned = False
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def call(self, function: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """``function(*args)`` on this thread; what it returns or raises, or
        :class:`_Timeout` after ``timeout`` seconds (this thread is then abandoned)."""
        self._jobs.put((function, args))
        try:
            ok, value = self._outcomes.get(timeout=min(timeout, threading.TIMEOUT_MAX))
        except queue.Empty:
            self.stop()
            raise _Timeout from None
        except BaseException:
            # Interrupted (KeyboardInterrupt) while the call runs: its outcome would
            # be taken for the next call's, so this thread is done with.
            self.stop()
            raise
        if ok:
            return value
        raise value

    def stop(self) -> None:
        """No more calls: the thread ends after the one it runs, if any."""
        self.abandoned = True
        self._jobs.put(None)

    def _serve(self) -> None:
        # The `del`s keep an idle thread from holding the last call's arguments
        # (a message's headers) and result alive until the next call.
        while (job := self._jobs.get()) is not None:
            function, args = job
            del job
            try:
                outcome: tuple[bool, Any] = (True, function(*args))
            # Whatever the plugin raised belongs to the caller, which re-raises it
            # on its own thread (and isolates the plugin there).
            except Exception as exc:  # noqa: BLE001
                outcome = (False, exc)
            # sys.exit() in a plugin (click-based tools do it) must not end the sync
            # thread that re-raises it: it becomes an ordinary plugin failure.
            except BaseException as exc:  # noqa: BLE001
                outcome = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
            del function, args
            self._outcomes.put(outcome)
            del outcome


# --------------------------------------------------------------------------- the facade


class Plugins:
    """Typed, isolating calls into the registered plugins.

    Each plugin call runs on a worker thread with a deadline of ``timeout``
    seconds.  Not thread-safe: one account's sync calls it from one thread.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        infos: Sequence[PluginInfo] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.pm = pm
        self.infos = list(infos)
        self.timeout = timeout
        self.failures: list[str] = [i.problem for i in infos if i.problem]
        self._broken: set[str] = set()
        self._worker: _CallThread | None = None
        # plugin -> (hook, thread) of a call that overran and may still be running.
        self._stuck: dict[str, tuple[str, threading.Thread]] = {}

    def start_run(self) -> None:
        """A new account run: plugins that failed in the last one get another chance,
        except one whose abandoned call is still running (calling it again would
        run it twice at once and pile up stuck threads, one per run)."""
        self._broken.clear()
        self.failures = [i.problem for i in self.infos if i.problem]
        for name, hook in self.stuck.items():
            why = f"plugin {name} has still not returned from {hook}, called in an earlier run"
            self._fail(name, why)

    @property
    def stuck(self) -> dict[str, str]:
        """Plugins whose abandoned call is still running: plugin name -> hook."""
        for name, (_hook, thread) in list(self._stuck.items()):
            if not thread.is_alive():
                del self._stuck[name]
        return {name: hook for name, (hook, _thread) in self._stuck.items()}

    def close(self) -> None:
        """Let the worker thread end (a later call starts a new one)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    # -- hooks ------------------------------------------------------------------

    def rules(self, account: AccountInfo, folder: str) -> list[Rule]:
        out: list[Rule] = []
        for _rank, name, result in self._call("syncd_rules", account=account, folder=folder):
            if result is None:
                continue
            if not isinstance(result, list | tuple) or not all(isinstance(r, Rule) for r in result):
                self._garbage(name, "syncd_rules", "a list of syncd.ext.rules.Rule or None", result)
                continue
            for rule in result:
                if rule.folder != folder:
                    self._garbage(name, "syncd_rules", f"rules for folder {folder}", rule.folder)
                    break
            else:
                prefix = "" if name == BUILTIN_RULES else f"{name}:"
                out += [dataclasses.replace(r, name=prefix + r.name) for r in result]
        return out

    def classify_headers(self, account: AccountInfo, folder: str) -> list[str]:
        fields: dict[str, None] = {}
        for _rank, name, result in self._call(
            "syncd_classify_headers", account=account, folder=folder
        ):
            if result is None:
                continue
            if isinstance(result, str) or not isinstance(result, list | tuple):
                self._garbage(name, "syncd_classify_headers", "a list of field names", result)
                continue
            bad = [f for f in result if not isinstance(f, str) or not _FIELD_RE.fullmatch(f)]
            if bad:
                self._garbage(name, "syncd_classify_headers", "header field names", bad[0])
                continue
            fields.update((f.title(), None) for f in result)
        return list(fields)

    def classify(
        self, account: AccountInfo, folder: str, uid: int, headers: Message
    ) -> list[tuple[int, str, Action]]:
        out: list[tuple[int, str, Action]] = []
        for rank, name, result in self._call(
            "syncd_classify", account=account, folder=folder, uid=uid, headers=headers
        ):
            if result is None:
                continue
            if not isinstance(result, Action):
                self._garbage(name, "syncd_classify", "a syncd.ext.rules.Action or None", result)
                continue
            if result.target is not None and result.target == folder:
                continue  # "move it where it is": nothing to do
            out.append((rank, name, result))
        return out

    def before_sync(self, account: AccountInfo, dry_run: bool) -> None:
        self._call("syncd_before_sync", account=account, dry_run=dry_run)

    def after_sync(self, account: AccountInfo, summary: SyncSummary) -> None:
        self._call("syncd_after_sync", account=account, summary=summary)

    # -- isolation ----------------------------------------------------------------

    def _call(self, hook: str, **kwargs: Any) -> list[tuple[int, str, Any]]:
        """Call each implementation of ``hook`` in pluggy's order, on its own.

        Returns ``(rank, plugin name, result)``; a plugin that raises or does not
        return within ``timeout`` seconds is logged with its name, marked broken
        for this run, and left out.
        """
        caller = getattr(self.pm.hook, hook)
        results: list[tuple[int, str, Any]] = []
        # pluggy calls the last registered (and tryfirst) implementations first.
        for rank, impl in enumerate(reversed(caller.get_hookimpls())):
            name = impl.plugin_name
            if name in self._broken:
                continue
            args = tuple(kwargs[arg] for arg in impl.argnames)
            if name == BUILTIN_RULES:
                # syncd's own TOML rules (a filter over the config): no thread hop,
                # which cost milliseconds per folder of every sync on a busy machine.
                results.append((rank, name, impl.function(*args)))
                continue
            worker = self._worker
            if worker is None:
                worker = self._worker = _CallThread(f"syncd-plugins-{id(self):x}")
            limit, source = _limit_for(impl.plugin, self.timeout)
            try:
                result = worker.call(impl.function, args, limit)
            # A plugin that hangs must not hold the account (RELIABILITY PLG-03).  Plugins
            # never get the IMAP connection (see hookspecs), so the connection is in a
            # known state and needs no reset: only the worker thread is given up.
            except _Timeout:
                self._stuck[name] = (hook, worker.thread)
                self._fail(
                    name,
                    f"plugin {name} did not return from {hook} within {limit:g} s"
                    f"{_where(kwargs)} (limit: {source})",
                )
                continue
            # A plugin's bug must not stop the sync (RELIABILITY PLG-01): whatever it
            # raised is logged with its traceback and the plugin is skipped.
            except Exception as exc:
                self._fail(name, f"plugin {name} raised in {hook}: {type(exc).__name__}: {exc}")
                logger.debug("traceback of plugin %s", name, exc_info=True)
                continue
            finally:
                if worker.abandoned:
                    self._worker = None
            results.append((rank, name, result))
        return results

    def _garbage(self, name: str, hook: str, expected: str, got: object) -> None:
        shown = repr(got)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        self._fail(
            name, f"plugin {name} returned garbage from {hook}: expected {expected}, got {shown}"
        )

    def _fail(self, name: str, message: str) -> None:
        self._broken.add(name)
        message += "; the plugin is skipped for the rest of this run"
        logger.error("%s", message)
        self.failures.append(message)


def _where(kwargs: Mapping[str, Any]) -> str:
    """``" in account work, folder INBOX, UID 7"`` from a hook's arguments, as far as known."""
    parts = []
    account = kwargs.get("account")
    if isinstance(account, AccountInfo):
        parts.append(f"account {account.name}")
    folder = kwargs.get("folder")
    if isinstance(folder, str):
        parts.append(f"folder {folder}")
    uid = kwargs.get("uid")
    if isinstance(uid, int):
        parts.append(f"UID {uid}")
    return " in " + ", ".join(parts) if parts else ""


def _limit_for(plugin: object, configured: float) -> tuple[float, str]:
    """The deadline of one call into ``plugin`` and where it comes from: ``[plugins]
    timeout``, or the plugin's own ``syncd_timeout`` when that is longer (a plugin
    that runs an indexer, say, knows it needs minutes; a user's shorter global
    limit should not turn every such run into a failure)."""
    declared = getattr(plugin, "syncd_timeout", None)
    if (
        isinstance(declared, int | float)
        and not isinstance(declared, bool)
        and math.isfinite(declared)
        and declared > configured
    ):
        return float(declared), "the plugin's syncd_timeout"
    return configured, "[plugins] timeout"
