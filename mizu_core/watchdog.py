"""Plugins that stop making progress: found, named and interrupted, at no cost per chunk.

A dissector that loops forever on some input would stall the capture for good (and, run on
the main thread, keep Ctrl-C from ever being seen). The :class:`Watchdog` of an engine looks at
the engine's thread a few times a second, from a thread of its own: it finds the innermost
call of the dispatcher into a plugin (:data:`PLUGIN_CALLS`) on that thread's stack. A call is
a frame of its own, so the same frame found again means the same call still running; once it
has run for the stall limit, the watchdog raises :class:`PluginStalled` inside it, on the
engine's thread. The dispatcher isolates the plugin as it isolates one that raised (its name
and the traceback of where it was stuck are logged, the connection goes to the plugins ranked
after it), and the capture goes on.

Nothing is done per chunk: the hot path does not know the watchdog exists. Stopping Mizu uses
the same means (:meth:`Watchdog.stop`): the engine's thread is interrupted wherever it is, and
the plugin call it was in, if any, named.

A plugin stuck inside a C extension that holds the GIL cannot be interrupted this way (no
Python code runs anywhere in the process); the commands' stop deadline ends such a process. The
dispatcher stays uncompiled for this: its frames are what the watchdog looks for.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from mizu_core.dispatch import Dispatcher
from mizu_core.plugins import LoadedPlugin, PluginStalled

log = logging.getLogger(__name__)

PLUGIN_CALLS: frozenset[CodeType] = frozenset(
    method.__code__
    for method in (
        Dispatcher.feed,
        Dispatcher.lost,
        Dispatcher.end,
        Dispatcher._offer,
        Dispatcher._claim,
        Dispatcher._analyzed,
    )
)
"""The dispatcher's methods that call into a plugin (its ``dissect`` hook, a dissector's feed,
gap or close, ``analyze``), and little else: one of them running for long is a plugin stuck."""
MAX_TICK = 0.5
"""Seconds between two looks at the engine's thread, at most."""
BUSY_SECONDS = 1.0
"""A plugin call under way for this long when Mizu is stopped is named as the one stuck."""

_set_async_exception = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exception.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exception.restype = ctypes.c_int


class EngineStopped(BaseException):
    """Raised in an engine's thread to end its run at once (Mizu is stopping)."""


@dataclass(frozen=True, slots=True)
class StuckCall:
    """A plugin call under way on the engine's thread."""

    plugin: str
    connection: str
    """``client → server`` of the connection being dissected ("" if unknown)."""
    seconds: float
    """How long the call has run (as far as the watchdog has seen it)."""

    def describe(self) -> str:
        where = f" on {self.connection}" if self.connection else ""
        return f"plugin {self.plugin} made no progress for {self.seconds:.1f} s{where}"

    def busy(self) -> str:
        where = f" on {self.connection}" if self.connection else ""
        return f"plugin {self.plugin} was busy for {self.seconds:.1f} s{where}"


class Watchdog:
    """Watches the thread an engine runs on while :meth:`watching` is entered there."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        """Seconds a plugin call may run before it is interrupted (0: never)."""
        self.interrupted = 0
        """Plugin calls interrupted so far."""
        self._lock = threading.RLock()  # re-entered by a signal handler on the watched thread
        self._thread_id: int | None = None
        self._depth = 0
        self._stop = threading.Event()
        self._call: FrameType | None = None
        """The plugin call seen at the last look (kept alive, so its identity stays its own)."""
        self._since = 0.0
        self._raised = 0
        """Interruptions raised in ``_call`` (a plugin may swallow one: it gets another)."""

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the current thread for the duration (re-entrant)."""
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._thread_id = threading.get_ident()
                if self.limit > 0:
                    self._stop = threading.Event()  # each sampler its own: none outlives it
                    threading.Thread(
                        target=self._sample, args=(self._stop,), name="mizu-watchdog", daemon=True
                    ).start()
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._thread_id = None
                    self._call = None
                    self._stop.set()

    def current(self) -> StuckCall | None:
        """The plugin call under way on the watched thread, if any."""
        with self._lock:
            call = self._innermost_call()
            return None if call is None else self._describe(call, self._seconds_in(call))

    def stop(self) -> StuckCall | None:
        """End the watched thread's run at once, wherever it is (:class:`EngineStopped`); the
        plugin call it was in, if any."""
        with self._lock:
            if self._thread_id is None:
                return None
            call = self._innermost_call()
            _set_async_exception(self._thread_id, EngineStopped)
            return None if call is None else self._describe(call, self._seconds_in(call))

    # -- the watchdog's thread -----------------------------------------------------------------

    def _sample(self, stop: threading.Event) -> None:
        tick = min(self.limit / 5, MAX_TICK)
        while not stop.wait(tick):
            with self._lock:
                if self._thread_id is None:
                    return
                call = self._innermost_call()
                now = time.monotonic()
                if call is not self._call:
                    self._call, self._since, self._raised = call, now, 0
                elif call is not None and now - self._since >= self.limit * (1 + self._raised):
                    stuck = self._describe(call, now - self._since)
                    if self._raised == 0:
                        log.warning(
                            "%s: interrupting it (the connection goes to the plugins ranked "
                            "after it)",
                            stuck.describe(),
                        )
                    self._raise(stuck)

    # -- helpers (called with the lock held) ----------------------------------------------------

    def _innermost_call(self) -> FrameType | None:
        if self._thread_id is None:
            return None
        frame = sys._current_frames().get(self._thread_id)
        while frame is not None:
            if frame.f_code in PLUGIN_CALLS:
                return frame
            frame = frame.f_back
        return None

    def _seconds_in(self, call: FrameType) -> float:
        return time.monotonic() - self._since if call is self._call else 0.0

    def _raise(self, stuck: StuckCall) -> None:
        """Raise PluginStalled in the watched thread, saying why (the exception's class is
        what the interpreter raises: each one carries its own description)."""
        assert self._thread_id is not None
        stalled = type(PluginStalled.__name__, (PluginStalled,), {"detail": stuck.describe()})
        stalled.__module__ = PluginStalled.__module__
        _set_async_exception(self._thread_id, stalled)
        self._raised += 1
        self.interrupted += 1

    @staticmethod
    def _describe(call: FrameType, seconds: float) -> StuckCall:
        found: dict[str, Any] = call.f_locals
        plugin = found.get("plugin") or found.get("owner")
        state = found.get("state")
        context = getattr(state, "context", None)
        if not isinstance(plugin, LoadedPlugin):
            plugin = getattr(state, "owner", None)
        name = plugin.name if isinstance(plugin, LoadedPlugin) else getattr(context, "owner", "")
        info = getattr(context, "connection", None)
        where = f"{info.client} → {info.server}" if info is not None else ""
        return StuckCall(name or "?", where, seconds)
