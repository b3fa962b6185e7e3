"""The markers of Mizu's pluggy hooks, in a module of their own: plugins, the hook
specifications and the core's own plugins import them without importing the rest of the
package (re-exported by :mod:`mizu_core`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pluggy

PROJECT = "mizu"
"""pluggy's name for Mizu's hooks: markers and the plugin manager share it."""

hookspec = pluggy.HookspecMarker(PROJECT)
"""Marks a hook specification in :mod:`mizu_core.hookspecs`."""

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's hook implementations: ``@hookimpl def dissect(...)``."""

IMPLEMENTED_BY = f"{PROJECT}_implemented_by"
"""The attribute :func:`implemented_by` sets on a hook implementation."""

_Hook = TypeVar("_Hook", bound=Callable[..., Any])


def implemented_by(function: Callable[..., Any]) -> Callable[[_Hook], _Hook]:
    """Declare that a hook implementation only calls ``function`` with its own arguments
    and returns its answer: the core then calls ``function`` itself, without the hook's
    frame (an interpreted call for every entry when ``function`` is compiled, whose
    attributes ``@hookimpl`` cannot mark). ``function`` takes the hook's parameters, by the
    same names (checked when the plugin is registered)::

        @hookimpl
        @implemented_by(analysis.summarize)
        def summarize(entry: Entry) -> Summary:
            return analysis.summarize(entry)
    """

    def declare(hook: _Hook) -> _Hook:
        setattr(hook, IMPLEMENTED_BY, function)
        return hook

    return declare
