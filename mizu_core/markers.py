"""The markers of Mizu's pluggy hooks, in a module of their own: plugins, the hook
specifications and the core's own plugins import them without importing the rest of the
package (re-exported by :mod:`mizu_core`)."""

from __future__ import annotations

import pluggy

PROJECT = "mizu"
"""pluggy's name for Mizu's hooks: markers and the plugin manager share it."""

hookspec = pluggy.HookspecMarker(PROJECT)
"""Marks a hook specification in :mod:`mizu_core.hookspecs`."""

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's hook implementations: ``@hookimpl def dissect(...)``."""
