"""The plugin manager: built-in plugins plus the entry-point group ``syncd``.

- :func:`load_plugins` builds a pluggy ``PluginManager`` with the hookspecs of
  :mod:`syncd.ext.hookspecs`, registers the built-in TOML rules plugin
  (``rules``, on unless ``[plugins] disable`` names it), then the entry points
  of the group ``syncd`` that ``[plugins] enable = [...]`` names.  Installed
  entry points are discovered but never imported unless enabled (RELIABILITY
  PLG-07): installing a package must not run its code inside the mail daemon.
  A plugin that cannot be imported, implements an unknown hook
  (``check_pending``) or a wrapper is reported and left out; syncd starts all
  the same.
- :class:`Plugins` is the typed facade over ``pm.hook``: it calls each
  implementation on its own, checks what it returns, and isolates a plugin
  that raises, returns garbage or does not return within ``[plugins] timeout``
  seconds (named in the log, skipped for the rest of the account's run,
  counted as a failure).
- :class:`RuleHooks` implements the engine's ``SyncHooks``: rules run in
  ``before_folder``, so mail they file arrives locally in its final folder.

Settings: ``[plugins.NAME]`` tables are handed to plugins as
``AccountInfo.settings["NAME"]``; syncd itself reads only ``enable``,
``disable`` and ``timeout`` (seconds a plugin call may take, default 30).
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
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from syncd import __version__
from syncd.engine.report import FolderReport
from syncd.errors import ConfigError
from syncd.ext import hookspecs
from syncd.ext.hookspecs import hookimpl
from syncd.ext.rules import Action, ClassifyMarks, FolderRun, Rule, RuleRunner, parse_rules
from syncd.folders import matches, split_name
from syncd.logsetup import account_logger

if TYPE_CHECKING:
    from syncd.account.syncer import AccountReport
    from syncd.config import AccountConfig, Config
    from syncd.stores.imap.session import ImapSession

# The name it had before the package split: users\' log filters use it.

logger = logging.getLogger("syncd.plugins")

ENTRY_POINT_GROUP: Final = "syncd"
BUILTIN_RULES: Final = "rules"
#: The keys of ``[plugins]`` syncd reads itself: no plugin can be configured by them.
RESERVED_KEYS: Final = ("enable", "disable", "timeout")
#: Names an entry point cannot take: the built-in's and syncd's own ``[plugins]`` keys.
RESERVED_NAMES: Final = frozenset({BUILTIN_RULES, *RESERVED_KEYS})
#: Seconds one plugin call may take before it is abandoned (``[plugins] timeout``).
DEFAULT_TIMEOUT: Final = 30.0
_FIELD_RE: Final = re.compile(r"[!-9;-~]+")


# --------------------------------------------------------------------------- what plugins see


@dataclass(frozen=True)
class AccountInfo:
    """An account as plugins see it: no password, no credential command, no keyring.

    ``settings`` maps a plugin name to its ``[plugins.NAME]`` table (read-only).
    """

    name: str
    host: str
    user: str
    maildir: Path
    layout: str
    trash: str | None
    settings: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, account: AccountConfig, settings: Mapping[str, Mapping[str, Any]]) -> AccountInfo:
        return cls(
            name=account.name,
            host=account.host,
            user=account.user,
            maildir=account.maildir,
            layout=account.layout,
            trash=account.trash,
            settings=settings,
        )

    def settings_for(self, plugin: str) -> Mapping[str, Any]:
        """The ``[plugins.<plugin>]`` table, or an empty mapping."""
        return self.settings.get(plugin, MappingProxyType({}))


@dataclass(frozen=True)
class FolderSummary:
    """One folder's outcome in a sync (``name`` as the user writes it)."""

    name: str
    downloaded: int = 0
    uploaded: int = 0
    flagged: int = 0
    deleted_local: int = 0
    deleted_server: int = 0
    rule_actions: int = 0
    error: str | None = None


@dataclass(frozen=True)
class SyncSummary:
    """What a sync of one account did, for ``syncd_after_sync``."""

    account: str
    dry_run: bool
    error: str | None
    folders: tuple[FolderSummary, ...]

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.error is None for f in self.folders)

    @property
    def changed_locally(self) -> bool:
        """Whether the local Maildir changed (what ``notmuch new`` needs to know)."""
        return not self.dry_run and any(
            f.downloaded or f.deleted_local or f.flagged for f in self.folders
        )


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


# --------------------------------------------------------------------------- built-in


class TomlRules:
    """Built-in plugin ``rules``: the ``[[accounts.NAME.rules]]`` tables."""

    def __init__(self, rules: Mapping[str, Sequence[Rule]]) -> None:
        self._rules = rules

    @hookimpl(tryfirst=True)  # the user's own rules run before any plugin's
    def syncd_rules(self, account: AccountInfo, folder: str) -> list[Rule]:
        return [r for r in self._rules.get(account.name, ()) if r.folder == folder]


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
            worker = self._worker
            if worker is None:
                worker = self._worker = _CallThread(f"syncd-plugins-{id(self):x}")
            limit, source = _limit_for(impl.plugin, self.timeout)
            try:
                result = worker.call(
                    impl.function, tuple(kwargs[arg] for arg in impl.argnames), limit
                )
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


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class PluginSettings:
    """What syncd itself reads from ``[plugins]``: ``enable``, ``disable``, ``timeout``
    (seconds) and the ``[plugins.NAME]`` tables it hands to the plugins."""

    enabled: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()
    timeout: float = DEFAULT_TIMEOUT
    tables: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )


def _settings(config: Config) -> PluginSettings:
    """The ``[plugins]`` table of ``config``; ConfigError naming the key if malformed."""
    names: dict[str, frozenset[str]] = {"enable": frozenset(), "disable": frozenset()}
    timeout = DEFAULT_TIMEOUT
    tables: dict[str, Mapping[str, Any]] = {}
    for key, value in config.plugins.items():
        if key in names:
            names[key] = _plugin_names(config, key, value)
        elif key == "timeout":
            # bool is an int to Python, but `timeout = true` is a mistake, not 1 s.
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigError(
                    f"{config.path}: plugins.timeout: must be a positive number of seconds a "
                    f"plugin call may take, e.g. 30 (got {value!r})"
                )
            timeout = float(value)
        elif isinstance(value, Mapping):
            tables[key] = MappingProxyType(dict(value))
        else:
            raise ConfigError(
                f"{config.path}: plugins.{key}: must be a table of settings for plugin {key} "
                f"([plugins.{key}]), or one of the keys {', '.join(RESERVED_KEYS)}"
            )
    both = sorted(names["enable"] & names["disable"])
    if both:
        raise ConfigError(
            f"{config.path}: plugins.enable: {both[0]} is in plugins.disable too; "
            f"name it in one of them"
        )
    return PluginSettings(names["enable"], names["disable"], timeout, MappingProxyType(tables))


def _plugin_names(config: Config, key: str, value: object) -> frozenset[str]:
    """``[plugins] enable`` or ``disable``: an array of non-empty strings."""
    example = f'e.g. {key} = ["notmuch"]'
    if not isinstance(value, list):
        got = "a table" if isinstance(value, Mapping) else repr(value)
        raise ConfigError(
            f"{config.path}: plugins.{key}: must be an array of plugin names, {example} (got {got})"
        )
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"{config.path}: plugins.{key}: must be an array of plugin names, {example} "
                f"(got the item {item!r})"
            )
    return frozenset(value)


def _installed() -> list[EntryPoint]:
    """The entry points of the group ``syncd``, by name; reading them imports nothing."""
    return sorted(
        entry_points(group=ENTRY_POINT_GROUP),
        key=lambda e: (e.name, e.dist.name if e.dist is not None else ""),
    )


def _shared_names(installed: Sequence[EntryPoint]) -> dict[str, str]:
    """Entry-point names that more than one of ``installed`` provides ->
    ``"dist-a and dist-b"``."""
    by_name: dict[str, list[str]] = {}
    for ep in installed:
        by_name.setdefault(ep.name, []).append(ep.dist.name if ep.dist is not None else "?")
    return {n: " and ".join(sorted(set(d))) for n, d in by_name.items() if len(d) > 1}


def check_plugins(config: Config) -> list[str]:
    """The problems in ``[plugins]`` of ``config``, one line each (for ``syncd check``).

    Imports no plugin.  An ``enable`` name that no installed distribution provides
    is a problem here, although a sync only warns about it: the user asked for
    something that will not happen — a typo would otherwise turn the plugin off
    without a word — and ``check`` is where they look before relying on it.  (A
    ``disable`` name that is not installed is not: what it asks for holds anyway.)
    """
    try:
        settings = _settings(config)
    except ConfigError as exc:
        return [str(exc)]
    eps = _installed()
    installed = sorted({ep.name for ep in eps} - RESERVED_NAMES)
    shared = _shared_names(eps)
    return [
        f"{config.path}: plugins.enable: {name} is not installed (installed syncd plugins: "
        f"{', '.join(installed) or 'none'})"
        for name in sorted(settings.enabled - set(installed) - {BUILTIN_RULES})
    ] + [
        f"{config.path}: plugins.enable: {name} is provided by {shared[name]}; neither is "
        "loaded until one is removed"
        for name in sorted(settings.enabled & shared.keys())
    ]


@dataclass(frozen=True)
class _Candidate:
    """A plugin to register (``plugin``), or one already settled: ``problem`` (it
    failed) or ``status`` (disabled, not enabled, ignored)."""

    name: str
    plugin: object | None
    distribution: str | None = None
    version: str | None = None
    problem: str | None = None
    status: str | None = None
    note: str | None = None


def load_plugins(
    config: Config,
    *,
    extra: Sequence[tuple[str, object]] = (),
    use_entry_points: bool = True,
) -> Plugins:
    """The plugin manager for ``config``: the built-in ``rules``, the entry points
    ``[plugins] enable`` names, then ``extra`` (``(name, plugin)`` pairs, for tests
    and embedding: always registered unless disabled).  An entry point that is
    not enabled is listed in ``infos`` but never imported.  Raises ConfigError for
    invalid TOML rules or ``[plugins]``; a broken plugin is only reported."""
    settings = _settings(config)
    disabled, enabled = settings.disabled, settings.enabled
    toml = {
        name: parse_rules(account, file=config.path) for name, account in config.accounts.items()
    }
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    candidates = [_Candidate(BUILTIN_RULES, TomlRules(toml), "syncd", __version__)]
    if use_entry_points:
        candidates += _entry_points(settings)
    candidates += [_Candidate(name, plugin) for name, plugin in extra]
    infos: list[PluginInfo] = []
    for c in candidates:
        status = c.status
        if status is None and c.name in disabled:
            pm.set_blocked(c.name)
            status = DISABLED
        if status is not None:
            infos.append(PluginInfo(c.name, c.distribution, c.version, (), status, note=c.note))
            continue
        problem = c.problem
        if problem is None and c.plugin is not None:
            problem = _register(pm, c.name, c.plugin)
        if problem is not None:
            if c.name in enabled:
                logger.error("%s; to leave it out, remove it from [plugins] enable", problem)
            else:
                logger.error("%s; disable it with [plugins] disable = [%r]", problem, c.name)
            infos.append(PluginInfo(c.name, c.distribution, c.version, (), FAILED, problem))
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(c.plugin) or ()))
        infos.append(PluginInfo(c.name, c.distribution, c.version, hooks, LOADED))
    known = {i.name for i in infos}
    for name in sorted(enabled - known):
        # Only a warning: the sync does what it can without it (`syncd check` fails).
        note = "named in [plugins] enable, but no installed package provides it"
        logger.warning("[plugins] enable names %s, which is not installed", name)
        infos.append(PluginInfo(name, None, None, (), NOT_INSTALLED, note=note))
    for name in sorted(disabled - known):
        logger.warning("[plugins] disable names %s, which is not installed", name)
    return Plugins(pm, infos, timeout=settings.timeout)


def _entry_points(settings: PluginSettings) -> list[_Candidate]:
    """The installed entry points, by name; only those ``settings`` enables are
    imported (RELIABILITY PLG-07): the others' code never runs in syncd."""
    out = []
    eps = _installed()
    shared = _shared_names(eps)
    for ep in eps:
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        known = _Candidate(ep.name, None, dist, version)
        if ep.name in shared and ep.name not in RESERVED_NAMES:
            # Which one would win depends on discovery order, and the other's code
            # would run unasked: load neither, and say why.
            note = f"{ep.name} is provided by {shared[ep.name]}: neither is loaded; remove one"
            if ep.name in settings.enabled:
                logger.warning("plugin %s (%s) is not loaded: %s", ep.name, dist, note)
            out.append(dataclasses.replace(known, status=IGNORED, note=note))
        elif ep.name in RESERVED_NAMES:
            note = f"the name {ep.name} is syncd's own; {dist or 'its package'} cannot use it"
            logger.warning("plugin %s (%s) is not loaded: %s", ep.name, dist, note)
            out.append(dataclasses.replace(known, status=IGNORED, note=note))
        elif ep.name in settings.disabled:
            out.append(known)
        elif ep.name not in settings.enabled:
            note = f'to load it: [plugins] enable = ["{ep.name}"]'
            # Debug, not info: said on every run it would be noise; `syncd plugins` says it.
            logger.debug("plugin %s (%s) is installed but not enabled", ep.name, dist)
            out.append(dataclasses.replace(known, status=NOT_ENABLED, note=note))
        else:
            try:
                out.append(dataclasses.replace(known, plugin=ep.load()))
            # Importing third-party code can raise anything; syncd must still start.
            except Exception as exc:  # noqa: BLE001
                why = f"plugin {ep.name} ({dist}) cannot be loaded: {type(exc).__name__}: {exc}"
                out.append(dataclasses.replace(known, problem=why))
    return out


def _register(pm: pluggy.PluginManager, name: str, plugin: object) -> str | None:
    """Register ``plugin``; the problem (and the plugin left out) when it is invalid."""
    if pm.get_plugin(name) is not None:
        return f"plugin {name}: another plugin already has that name"
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        return f"plugin {name} is invalid: {exc}"
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                pm.unregister(plugin)
                return f"plugin {name}: {caller.name} is a wrapper, which syncd does not call"
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin)
        return f"plugin {name} is invalid: {exc}"
    return None


# --------------------------------------------------------------------------- the engine's hooks


class RuleHooks:
    """``syncd.account.syncer.SyncHooks`` for the rules: ``before_folder`` runs the
    folder's rules and classify plugins; the account hooks call the plugins'
    before/after hooks and report plugin and rule failures in the account report
    (so the run exits non-zero)."""

    def __init__(
        self, config: Config, plugins: Plugins, *, allow_mass_delete: bool = False
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.allow_mass_delete = allow_mass_delete
        self._settings = _settings(config).tables
        self._marks: dict[str, ClassifyMarks] = {}
        self._runner: RuleRunner | None = None
        self._session: ImapSession | None = None
        self._runs: dict[str, FolderRun] = {}  # folder ("/" name) -> what the rules did
        self._dry_run = False
        #: Folders (``/`` names) the rules created on the server in the current run;
        #: the engine may sync them in the same run (it listed folders before).
        self.created_folders: list[str] = []

    def info(self, account: AccountConfig) -> AccountInfo:
        return AccountInfo.of(account, self._settings)

    # -- SyncHooks ------------------------------------------------------------------

    def before_account(self, *, account: AccountConfig, dry_run: bool) -> None:
        self._start(dry_run)
        self.plugins.before_sync(self.info(account), dry_run)

    def before_folder(
        self, *, account: AccountConfig, session: ImapSession, folder: str, dry_run: bool
    ) -> list[str]:
        """Run the rules of server folder ``folder``; returns the dry-run lines."""
        shown = "/".join(split_name(folder, session.delimiter()))
        run = self.run_folder(account, session, shown, dry_run=dry_run)
        self._runs[shown] = run
        return run.lines

    def after_account(self, *, account: AccountConfig, report: AccountReport) -> None:
        delimiter = self._session.delimiter() if self._session is not None else None
        folders = []
        for f in report.folders:
            shown = "/".join(split_name(f.name, delimiter))
            run = self._runs.get(shown)
            folders.append(
                FolderSummary(
                    name=shown,
                    downloaded=f.downloaded,
                    uploaded=f.uploaded,
                    flagged=f.flagged,
                    deleted_local=f.deleted_near,
                    deleted_server=f.deleted_far,
                    rule_actions=run.acted if run is not None else 0,
                    error=f.error,
                )
            )
        summary = SyncSummary(account.name, self._dry_run, report.error, tuple(folders))
        self.plugins.after_sync(self.info(account), summary)
        for name, run in self._runs.items():
            if run.errors:
                report.folders.append(FolderReport(f"{name} (rules)", error="; ".join(run.errors)))
        if self.plugins.failures:
            report.folders.append(
                FolderReport("(plugins)", error="; ".join(dict.fromkeys(self.plugins.failures)))
            )
        self._runner = None
        self._session = None

    # -- running rules ------------------------------------------------------------------

    def run_folder(
        self, account: AccountConfig, session: ImapSession, folder: str, *, dry_run: bool
    ) -> FolderRun:
        """Rules and classify plugins on ``folder`` (``/``-separated name)."""
        info = self.info(account)
        runner = self._runner_for(account, session, dry_run)
        runner.log = account_logger(account.name, folder)
        rules = self.plugins.rules(info, folder)
        fields = self.plugins.classify_headers(info, folder)

        def classify(uid: int, headers: Message) -> list[tuple[int, str, Action]]:
            return self.plugins.classify(info, folder, uid, headers)

        created = len(runner.created)
        run = runner.run(folder, rules, fields=fields, classify=classify)
        self.created_folders += runner.created[created:]
        return run

    def run_account(
        self, account: AccountConfig, session: ImapSession, *, dry_run: bool
    ) -> list[FolderRun]:
        """``syncd rules``: every selected server folder, without a sync.
        Problems are in the runs' ``errors`` and in ``plugins.failures``."""
        self._start(dry_run)
        delimiter = session.delimiter()
        names = sorted(
            (
                split_name(i.name, i.delimiter or delimiter)
                for i in session.list_folders()
                if not {f.upper() for f in i.flags} & {"\\NOSELECT", "\\NONEXISTENT"}
            ),
            key=lambda p: (p != ("INBOX",), p),
        )
        runs = []
        for parts in names:
            if matches(parts, account.folders, account.exclude):
                runs.append(self.run_folder(account, session, "/".join(parts), dry_run=dry_run))
        self._runner = None
        return runs

    def close(self) -> None:
        for marks in self._marks.values():
            marks.close()
        self._marks.clear()
        self.plugins.close()

    def _start(self, dry_run: bool) -> None:
        self.plugins.start_run()
        self._dry_run = dry_run
        self.created_folders = []
        self._runs = {}
        self._runner = None
        self._session = None

    def _runner_for(
        self, account: AccountConfig, session: ImapSession, dry_run: bool
    ) -> RuleRunner:
        if self._runner is None or self._session is not session:
            marks = self._marks.get(account.name)
            if marks is None:
                marks = ClassifyMarks(self.config.state_dir / f"{account.name}.rules.db")
                self._marks[account.name] = marks
            self._runner = RuleRunner(
                session,
                account=account,
                dry_run=dry_run,
                allow_mass_delete=self.allow_mass_delete,
                marks=marks,
            )
            self._session = session
        return self._runner


def load_hooks(config: Config, *, allow_mass_delete: bool = False) -> RuleHooks:
    """The engine hooks for ``config`` (``syncd sync``, the daemon).  ConfigError
    for invalid rules or ``[plugins]``."""
    return RuleHooks(config, load_plugins(config), allow_mass_delete=allow_mass_delete)
