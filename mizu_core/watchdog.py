"""Plugins that stop making progress: found, named and interrupted, at no cost per chunk.

A dissector that loops forever on some input would stall the capture for good (and, run on
the main thread, keep Ctrl-C from ever being seen). The :class:`Watchdog` of an engine looks at
the engine's dispatcher a few times a second, from a thread of its own: the dispatcher notes
the innermost call it makes into a plugin (:meth:`Dispatcher.plugin_call`: the plugin, the
connection, and a serial that changes with every call). The same serial seen again means the
same call still running; once it has run for the stall limit, the watchdog raises
:class:`PluginStalled` inside it, on the engine's thread. The dispatcher isolates the plugin as
it isolates one that raised (its name and the traceback of where it was stuck are logged, the
connection goes to the plugins ranked after it), and the capture goes on.

The hot path pays three stores in compiled code per call into a plugin. Stopping Mizu uses the
same means (:meth:`Watchdog.stop`): the engine's thread is interrupted wherever it is, and the
plugin call it was in, if any, named.

The interruption is an exception the interpreter raises when it next runs Python code on that
thread: a plugin stuck inside compiled code (a C extension, a module compiled with mypyc)
cannot be interrupted this way; the commands' stop deadline ends such a process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator

from mizu_core.dispatch import Dispatcher, PluginCall
from mizu_core.plugins import PluginStalled

log = logging.getLogger(__name__)

MAX_TICK = 0.5
"""Seconds between two looks at the engine's thread, at most."""
BUSY_SECONDS = 1.0
"""A plugin call under way for this long when Mizu is stopped is named as the one stuck."""

_set_async_exception = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exception.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exception.restype = ctypes.c_int


class EngineStopped(BaseException):
    """Raised in an engine's thread to end its run at once (Mizu is stopping)."""


class StuckCall:
    """A plugin call under way on the engine's thread."""

    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = ("connection", "plugin", "seconds")

    def __init__(self, plugin: str, connection: str, seconds: float) -> None:
        self.plugin = plugin
        self.connection = connection
        """``client → server`` of the connection being dissected ("" if unknown)."""
        self.seconds = seconds
        """How long the call has run (as far as the watchdog has seen it)."""

    def describe(self) -> str:
        where = f" on {self.connection}" if self.connection else ""
        return f"plugin {self.plugin} made no progress for {self.seconds:.1f} s{where}"

    def busy(self) -> str:
        where = f" on {self.connection}" if self.connection else ""
        return f"plugin {self.plugin} was busy for {self.seconds:.1f} s{where}"


class Watchdog:
    """Watches the thread an engine runs on while :meth:`watching` is entered there, and the
    calls its dispatcher makes into plugins."""

    def __init__(self, limit: float, dispatcher: Dispatcher) -> None:
        self.limit = limit
        self.dispatcher = dispatcher
        """Seconds a plugin call may run before it is interrupted (0: never)."""
        self.interrupted = 0
        """Plugin calls interrupted so far."""
        self._lock = threading.RLock()  # re-entered by a signal handler on the watched thread
        self._thread_id: int | None = None
        self._depth = 0
        self._stop = threading.Event()
        self._call = 0
        """The serial of the plugin call seen at the last look (0: none)."""
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
                    self._call = 0
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
                serial = call.serial if call is not None else 0
                if serial != self._call:
                    self._call, self._since, self._raised = serial, now, 0
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

    def _innermost_call(self) -> PluginCall | None:
        if self._thread_id is None:
            return None
        return self.dispatcher.plugin_call()

    def _seconds_in(self, call: PluginCall) -> float:
        return time.monotonic() - self._since if call.serial == self._call else 0.0

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
    def _describe(call: PluginCall, seconds: float) -> StuckCall:
        info = call.connection
        where = f"{info.client} → {info.server}" if info is not None else ""
        return StuckCall(call.plugin or "?", where, seconds)
