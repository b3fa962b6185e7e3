"""Finding, ranking and calling plugins.

Plugins are found through the ``mizu.plugins`` entry-point group, the built-in ones included.
They are ranked by Mizu's priority (the lowest among their protocols; ties by name), not by
pluggy's registration order. Hooks are called on one plugin at a time through
:meth:`PluginManager.call`, which isolates a plugin that raises: its error is counted against
its name, logged once with its traceback, and the caller gets ``None``.

``MIZU_TRACE_HOOKS=1`` in the environment prints every hook call on stderr as it returns: the
plugin, the hook, its arguments, what it returned (or raised) and how long it took.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import importlib_metadata
import pluggy

import mizu_core.hookspecs as hookspecs
from mizu_core.markers import IMPLEMENTED_BY, PROJECT
from mizu_core.model import Protocol

ENTRY_POINT_GROUP = "mizu.plugins"
ALLOW_ENV = "MIZU_PLUGINS"
"""Comma-separated plugin names: when set, only these load (like ``--plugins``)."""
TRACE_ENV = "MIZU_TRACE_HOOKS"
"""``1``: every hook call is printed on stderr (:func:`traced`)."""
HOOK_NAMES = tuple(
    name for name, value in vars(hookspecs).items() if hasattr(value, f"{PROJECT}_spec")
)
"""The hooks :mod:`mizu_core.hookspecs` specifies, in their order there."""

log = logging.getLogger(__name__)


def installed_plugins() -> list[importlib_metadata.EntryPoint]:
    """The installed plugins' entry points, by name, the first of each name: what is installed,
    found without importing any plugin."""
    found: dict[str, importlib_metadata.EntryPoint] = {}
    for entry_point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return [found[name] for name in sorted(found)]


class PluginError(Exception):
    """A plugin could not be loaded or configured; the message says which and why."""


class PluginStalled(BaseException):
    """Raised inside a plugin's call that made no progress for the engine's stall limit (by
    its watchdog, :mod:`mizu_core.watchdog`): the plugin is isolated as one that raised. Not an
    ``Exception``, as ``KeyboardInterrupt`` is not, so that a plugin's ``except Exception``
    does not swallow it."""

    detail = "made no progress"

    def __str__(self) -> str:
        return super().__str__() or self.detail


class LoadedPlugin:
    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = ("_version", "distribution", "hooks", "module", "name", "priority", "protocols")

    def __init__(
        self,
        name: str,
        module: object,
        protocols: tuple[Protocol, ...],
        priority: int,
        hooks: dict[str, Callable[..., Any]],
        distribution: importlib_metadata.Distribution | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.protocols = protocols
        self.priority = priority
        self.hooks = hooks
        self.distribution = distribution
        """The installed distribution the plugin came from; None when registered directly."""
        self._version: str | None = None

    @property
    def version(self) -> str:
        """The distribution's version ("0" without one), read when first asked for: reading
        it parses the distribution's METADATA with the ``email`` package, an import that
        commands which never show versions (``mizu dissect``) should not pay at start-up."""
        if self._version is None:
            self._version = self.distribution.version if self.distribution is not None else "0"
        return self._version

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({port for p in self.protocols for port in p.ports}))


class PluginManager:
    """The plugins of one process: who they are, their rank, and a safe way to call them."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.plugins: list[LoadedPlugin] = []
        self.by_protocol: dict[str, LoadedPlugin] = {}
        self.errors: Counter[str] = Counter()
        self.load_failures: dict[str, str] = {}
        self.installed: set[str] = set()
        """The names of the plugins :meth:`discover` found installed, loaded or not."""
        self.left_out: set[str] = set()
        """Installed plugins not loaded because ``allow`` or ``deny`` said so."""
        self.settings: dict[str, Any] = {}
        """Each plugin's settings as its dissectors read them (``ConnectionContext.settings``):
        what its ``configure`` returned, else its keys as given."""
        self.configured = False
        self._logged: set[tuple[str, str]] = set()

    # -- loading -------------------------------------------------------------------------------

    def discover(
        self, allow: Iterable[str] | None = None, deny: Iterable[str] = ()
    ) -> PluginManager:
        """Load every plugin of the entry-point group, less those not allowed.

        ``allow`` (or the ``MIZU_PLUGINS`` environment variable) names the only plugins to
        load; ``deny`` names plugins to skip. A plugin that fails to import is recorded in
        :attr:`load_failures` and skipped.
        """
        if allow is None and os.environ.get(ALLOW_ENV):
            allow = [name.strip() for name in os.environ[ALLOW_ENV].split(",") if name.strip()]
        allowed = set(allow) if allow is not None else None
        denied = set(deny)
        for entry_point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
            name = entry_point.name
            self.installed.add(name)
            if name in denied or (allowed is not None and name not in allowed):
                self.left_out.add(name)
                continue
            if any(plugin.name == name for plugin in self.plugins):
                continue
            try:
                module = entry_point.load()
            except Exception as error:  # a broken plugin must not stop the others
                self.load_failures[name] = f"{type(error).__name__}: {error}"
                log.warning("plugin %s failed to load: %s", name, error)
                continue
            self.register(module, name, entry_point.dist)
        if allowed is not None:
            for missing in sorted(
                allowed - {p.name for p in self.plugins} - set(self.load_failures)
            ):
                self.load_failures[missing] = "not installed (no such entry point in mizu.plugins)"
        return self

    def register(
        self,
        module: object,
        name: str,
        distribution: importlib_metadata.Distribution | None = None,
    ) -> LoadedPlugin:
        """Register one plugin object (a module or an instance with hook implementations)."""
        try:
            self._pm.register(module, name=name)
        except (ValueError, pluggy.PluginValidationError) as error:
            raise PluginError(f"plugin {name} is not valid: {error}") from error
        try:
            hooks = {
                hook_name: _callee(hook_name, impl.function)
                for hook_name in HOOK_NAMES
                for impl in getattr(self._pm.hook, hook_name).get_hookimpls()
                if impl.plugin is module
            }
        except PluginError as error:
            self._pm.unregister(module)
            raise PluginError(f"plugin {name}: {error}") from error
        if os.environ.get(TRACE_ENV) == "1":
            hooks = {hook_name: traced(name, hook_name, hook) for hook_name, hook in hooks.items()}
        if "protocols" not in hooks:
            self._pm.unregister(module)
            raise PluginError(f"plugin {name} declares no protocols (implement the protocols hook)")
        try:
            declared = tuple(hooks["protocols"]())
        except Exception as error:
            self._pm.unregister(module)
            raise PluginError(f"plugin {name} failed to declare its protocols: {error}") from error
        if not declared:
            self._pm.unregister(module)
            raise PluginError(f"plugin {name} declares no protocols")
        plugin = LoadedPlugin(
            name=name,
            module=module,
            protocols=declared,
            priority=min(p.priority for p in declared),
            hooks=hooks,
            distribution=distribution,
        )
        self.plugins.append(plugin)
        self.plugins.sort(key=lambda p: (p.priority, p.name))
        for protocol in declared:
            self.by_protocol.setdefault(protocol.name, plugin)
        return plugin

    def declared_protocols(self) -> list[Protocol]:
        """Every protocol the loaded plugins declared."""
        return [protocol for plugin in self.plugins for protocol in plugin.protocols]

    def configure(self, settings: Mapping[str, Mapping[str, Any]]) -> None:
        """Hand each plugin its settings; a plugin's ValueError becomes a PluginError. The
        settings of a plugin left out or that failed to load are not looked at; those of a
        plugin not installed are an error (a typo must not go unnoticed)."""
        not_loaded = self.left_out | set(self.load_failures)
        unknown = set(settings) - {p.name for p in self.plugins} - not_loaded
        if unknown:
            raise PluginError(
                f"settings for unknown plugin(s): {', '.join(sorted(unknown))} "
                f"(installed: {', '.join(p.name for p in self.plugins)})"
            )
        configured: dict[str, Any] = {}
        for plugin in self.plugins:
            given = dict(settings.get(plugin.name, {}))
            hook = plugin.hooks.get("configure")
            if hook is None:
                if given:
                    raise PluginError(f"plugin {plugin.name} takes no settings")
                configured[plugin.name] = given
                continue
            try:
                parsed = hook(settings=given)
            except ValueError as error:
                raise PluginError(f"plugins.{plugin.name}: {error}") from error
            configured[plugin.name] = given if parsed is None else parsed
        self.settings = configured
        self.configured = True

    # -- calling -------------------------------------------------------------------------------

    def call(self, plugin: LoadedPlugin, hook_name: str, **kwargs: Any) -> Any:
        """Call one plugin's hook; a plugin that raises is counted and logged, and gets None."""
        hook = plugin.hooks.get(hook_name)
        if hook is None:
            return None
        try:
            return hook(**kwargs)
        except (Exception, PluginStalled) as error:
            self.failed(plugin, hook_name, error)
            return None

    def failed(self, plugin: LoadedPlugin, where: str, error: BaseException) -> None:
        """Count a plugin's error; log the first of each kind with its traceback."""
        self.errors[plugin.name] += 1
        signature = (plugin.name, f"{where}:{type(error).__name__}")
        if signature not in self._logged:
            self._logged.add(signature)
            log.error(
                "plugin %s %s in %s (further errors of this kind are only counted)",
                plugin.name,
                "was stuck" if isinstance(error, PluginStalled) else "raised",
                where,
                exc_info=error,
            )

    def owner(self, protocol_name: str) -> LoadedPlugin | None:
        return self.by_protocol.get(protocol_name)

    @property
    def server_ports(self) -> frozenset[int]:
        return frozenset(port for plugin in self.plugins for port in plugin.ports)

    @property
    def macros(self) -> dict[str, str]:
        """Filter-language words declared by the plugins, mapped to their expressions.

        Each protocol's ``macro`` selects its entries (``protocol.macro == "grpc"``); a word
        in a protocol's ``macros`` overrides that default (an HTTP plugin may make ``http``
        mean every HTTP version). Among plugins, the higher ranked one's word wins."""
        declared: dict[str, str] = {}
        defaults: dict[str, str] = {}
        for plugin in self.plugins:
            for protocol in plugin.protocols:
                defaults.setdefault(protocol.macro, f'protocol.macro == "{protocol.macro}"')
                for word, expression in protocol.macros.items():
                    declared.setdefault(word, expression)
        return defaults | declared


def _callee(hook_name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
    """What the core calls for ``hook``: the function it is declared to be implemented by
    (:func:`mizu_core.markers.implemented_by`), when its parameters are the hook's, else the
    hook itself."""
    function = getattr(hook, IMPLEMENTED_BY, None)
    if function is None:
        return hook
    try:
        takes = list(inspect.signature(function).parameters)
    except (TypeError, ValueError) as error:
        raise PluginError(f"{hook_name} is implemented by {function!r}: {error}") from error
    expected = list(inspect.signature(hook).parameters)
    if takes != expected:
        raise PluginError(
            f"{hook_name} is implemented by {function!r}, which takes ({', '.join(takes)}) "
            f"where the hook takes ({', '.join(expected)})"
        )
    return function  # type: ignore[no-any-return]


def traced(plugin: str, hook_name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
    """``hook``, printing each call on stderr as it returns (``MIZU_TRACE_HOOKS=1``)."""

    def call(**kwargs: Any) -> Any:
        arguments = ", ".join(f"{key}={_brief(value)}" for key, value in kwargs.items())
        started = time.perf_counter()
        try:
            result = hook(**kwargs)
        except BaseException as error:
            outcome = f"raised {type(error).__name__}: {error}"
            raise
        else:
            outcome = f"-> {_brief(result)}"
        finally:
            took = (time.perf_counter() - started) * 1000
            sys.stderr.write(
                f"mizu: hook {plugin}.{hook_name}({arguments}) {outcome} [{took:.3f} ms]\n"
            )
        return result

    return call


def _brief(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
