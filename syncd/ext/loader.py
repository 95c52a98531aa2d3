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
- It returns a :class:`~syncd.ext.timed.Plugins`, the typed facade over
  ``pm.hook`` that calls each implementation on its own, with a deadline.
- :class:`~syncd.ext.hooks.RuleHooks` (built by ``load_hooks``) implements the
  engine's ``SyncHooks`` on top of it.

Settings: ``[plugins.NAME]`` tables are handed to plugins as
``AccountInfo.settings["NAME"]``; syncd itself reads only ``enable``,
``disable`` and ``timeout`` (seconds a plugin call may take, default 30).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from syncd import __version__
from syncd.errors import ConfigError
from syncd.ext import hookspecs
from syncd.ext.hookspecs import hookimpl
from syncd.ext.rules import parse_rules
from syncd.ext.timed import (
    BUILTIN_RULES,
    DEFAULT_TIMEOUT,
    DISABLED,
    FAILED,
    IGNORED,
    LOADED,
    NOT_ENABLED,
    NOT_INSTALLED,
    PluginInfo,
    Plugins,
)
from syncd.ext.types import AccountInfo, Rule
from syncd.logsetup import follow_syncd_level

if TYPE_CHECKING:
    from syncd.config import Config

# The name it had before the package split: users' log filters use it.
logger = logging.getLogger("syncd.plugins")

ENTRY_POINT_GROUP: Final = "syncd"
#: The keys of ``[plugins]`` syncd reads itself: no plugin can be configured by them.
RESERVED_KEYS: Final = ("enable", "disable", "timeout")
#: Names an entry point cannot take: the built-in's and syncd's own ``[plugins]`` keys.
RESERVED_NAMES: Final = frozenset({BUILTIN_RULES, *RESERVED_KEYS})


# --------------------------------------------------------------------------- built-in


class TomlRules:
    """Built-in plugin ``rules``: the ``[[accounts.NAME.rules]]`` tables."""

    def __init__(self, rules: Mapping[str, Sequence[Rule]]) -> None:
        self._rules = rules

    @hookimpl(tryfirst=True)  # the user's own rules run before any plugin's
    def syncd_rules(self, account: AccountInfo, folder: str) -> list[Rule]:
        return [r for r in self._rules.get(account.name, ()) if r.folder == folder]


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


def plugin_settings(config: Config) -> PluginSettings:
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
        settings = plugin_settings(config)
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
    settings = plugin_settings(config)
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
        if c.name != BUILTIN_RULES and c.plugin is not None:
            follow_syncd_level(_logger_name(c.plugin))
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


def _logger_name(plugin: object) -> str:
    """The logger a plugin gets from ``logging.getLogger(__name__)``: its module's
    name (the plugin is a module, or an object whose class a module defines)."""
    name = getattr(plugin, "__name__", None) if isinstance(plugin, types.ModuleType) else None
    return name or type(plugin).__module__


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
