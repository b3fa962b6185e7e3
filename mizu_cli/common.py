"""What several ``mizu`` commands share: loading plugins, table output, the summary line,
query filtering, opening the hub's store, reading API rules."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from mizu_core.plugins import PluginError, PluginManager
from mizu_core.views import table_line
from mizu_core.watchdog import BUSY_SECONDS, Watchdog

if TYPE_CHECKING:
    from mizu_core.query import Query
    from mizu_server.rules import Rules
    from mizu_server.store import SqliteStore


def load_plugins(allow: str | None, deny: str | None) -> PluginManager:
    """The installed plugins less those left out; a plugin that cannot load is reported. A
    name that no installed plugin has is a usage error (a typo would otherwise dissect with
    fewer plugins, or all of them)."""
    allowed = plugin_names(allow) if allow else None
    denied = plugin_names(deny) if deny else []
    manager = PluginManager().discover(allow=allowed, deny=denied)
    # the names are checked against the entry points the discovery read: reading them again
    # would cost as much again
    for names, option in ((allowed or [], "--plugins"), (denied, "--no-plugins")):
        unknown = [name for name in names if name not in manager.installed]
        if unknown:
            raise click.BadParameter(
                f"{', '.join(unknown)}: no such plugin "
                f"(installed: {', '.join(sorted(manager.installed))})",
                param_hint=f"'{option}'",
            )
    for name, reason in sorted(manager.load_failures.items()):
        click.echo(f"mizu: plugin {name} not loaded: {reason}", err=True)
    return manager


def configured_plugins(
    settings: Mapping[str, Mapping[str, Any]],
    allow: str | None = None,
    deny: str | None = None,
) -> PluginManager:
    """:func:`load_plugins`, each plugin then configured with its ``plugins.<name>.*``
    settings (the config file, ``--set``); a plugin's refusal stops the command with its
    message."""
    plugins = load_plugins(allow, deny)
    try:
        plugins.configure(settings)
    except PluginError as error:
        raise click.ClickException(str(error)) from None
    return plugins


def plugin_names(names: str) -> list[str]:
    """The comma-separated plugin ``names`` of ``--plugins`` or ``--no-plugins``."""
    return [name.strip() for name in names.split(",") if name.strip()]


plugin_options = [
    click.option(
        "--plugins",
        "allow",
        metavar="NAMES",
        help="Comma-separated plugins to load, and no others (default: all installed; "
        "also the MIZU_PLUGINS environment variable).",
    ),
    click.option("--no-plugins", "deny", metavar="NAMES", help="Comma-separated plugins to skip."),
]


def with_plugin_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(plugin_options):
        function = option(function)
    return function


TLS_KEYLOG_HELP = (
    "An NSS key log (the file SSLKEYLOGFILE names for curl, browsers, Python, Node, Go; lines "
    "LABEL CLIENT_RANDOM SECRET: CLIENT_RANDOM for TLS 1.2, the *_TRAFFIC_SECRET_* ones for "
    "TLS 1.3): TLS sessions whose secrets it holds are decrypted, and their traffic dissected "
    "as if it were in clear (entries gain tls.decrypted). Lines that do not parse are skipped "
    "and counted. Its secrets stay in this process: never logged, stored or sent."
)


def with_tls_keylog(
    settings: Mapping[str, Mapping[str, Any]], tls_keylog: str | None
) -> dict[str, dict[str, Any]]:
    """The plugins' settings with ``--tls-keylog``, the ``tls`` plugin's ``keylog``."""
    merged = {name: dict(values) for name, values in settings.items()}
    if tls_keylog:
        merged.setdefault("tls", {})["keylog"] = tls_keylog
    return merged


def check_tls_keylog(plugins: PluginManager, tls_keylog: str | None) -> None:
    """``--tls-keylog`` is a usage error when the ``tls`` plugin is not loaded: the key log
    would be ignored silently."""
    if tls_keylog and not any(plugin.name == "tls" for plugin in plugins.plugins):
        raise click.UsageError(
            "--tls-keylog needs the tls plugin, which is not loaded "
            f"(loaded: {', '.join(plugin.name for plugin in plugins.plugins)})"
        )


def cluster_plugin_settings(
    settings: Mapping[str, Mapping[str, Any]],
) -> Mapping[str, Mapping[str, Any]]:
    """The plugins' settings of an agent in a cluster, which never reads a key log."""
    if settings.get("tls", {}).get("keylog"):
        raise click.ClickException(
            "plugins.tls.keylog decrypts with a key log of this machine (mizu dissect, mizu tap "
            "--local): in a cluster, Mizu reads no application's secrets; remove the key"
        )
    return settings


class TableSink:
    """Entries as aligned lines, like tshark's default output."""

    def __init__(self, plugins: PluginManager, stream: IO[str]) -> None:
        self.plugins = plugins
        self.stream = stream

    def write(self, entry: dict[str, Any]) -> None:
        self.stream.write(table_line(self.plugins, entry))

    def close(self) -> None:
        self.stream.flush()


def summary_line(stats: dict[str, Any]) -> str:
    errors = stats["plugin_errors"]
    parts = [
        f"{stats['packets']:,} packets",
        f"{stats['connections']:,} connections",
        f"{stats['entries']:,} entries",
        f"{stats['skipped']:,} skipped",
    ]
    reassembly = stats["reassembly"]
    if reassembly["gaps"]:
        parts.append(f"{reassembly['gaps']:,} gaps ({reassembly['bytes_lost']:,} bytes lost)")
    if reassembly["duplicate_packets"]:
        parts.append(f"{reassembly['duplicate_packets']:,} duplicate packets")
    sources = stats["capture"]
    if any(source.get("truncated_file") for source in sources):
        parts.append("file truncated")
    kernel = sum(source.get("dropped", 0) for source in sources)
    interface = sum(source.get("interface_dropped", 0) for source in sources)
    live = any(source.get("live") for source in sources)
    if kernel or live:
        # a live capture always says it, 0 included; a file only when its statistics tell
        parts.append(
            f"{kernel:,} packets dropped by the kernel"
            + ("" if live else " when the file was recorded")
        )
    if interface:
        parts.append(f"{interface:,} dropped by the interface")
    parts.append(
        "plugin errors: " + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none")
    )
    return "mizu: " + ", ".join(parts)


def pairing_lines(stats: dict[str, Any]) -> list[str]:
    """A line for each plugin that left messages unpaired or lost its framing (after
    :func:`summary_line`)."""
    return [
        line
        for name, counters in sorted(stats["plugin_counters"].items())
        if (line := pairing_line(name, counters))
    ]


def pairing_line(plugin: str, counters: Mapping[str, int]) -> str:
    """How well ``plugin`` paired: entries paired, left unpaired by reason, and how often it
    found its framing again after lost bytes or a start mid-connection ("" when it paired
    nothing and lost nothing)."""
    unpaired = {
        name.removeprefix("unpaired."): count
        for name, count in sorted(counters.items())
        if name.startswith("unpaired.") and count
    }
    parts = []
    if counters.get("paired"):
        parts.append(f"{counters['paired']:,} paired")
    if unpaired:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in unpaired.items())
        parts.append(f"{sum(unpaired.values()):,} unpaired ({reasons})")
    if counters.get("resyncs"):
        parts.append(f"{counters['resyncs']:,} resyncs")
    if counters.get("bytes_skipped"):
        parts.append(f"{counters['bytes_skipped']:,} bytes skipped")
    if not unpaired and not counters.get("resyncs") and not counters.get("bytes_skipped"):
        return ""
    return f"mizu: {plugin}: " + ", ".join(parts)


def compile_query_option(text: str, plugins: PluginManager, option: str = "-q") -> Query | None:
    """The query an option gives (None when empty); a syntax error is a usage error."""
    if not text:
        return None
    # the filter language is imported by the commands given a filter only
    from mizu_core.query import QueryError, compile_query

    try:
        return compile_query(text, plugins.macros)
    except QueryError as error:
        raise click.BadParameter(error.describe(text), param_hint=f"'{option}'") from None


def discard_standard_output() -> None:
    """Point standard output at /dev/null once it cannot be written (``| head``, a full
    disk): what Python still buffers for it would fail again when flushed at exit, with a
    traceback of its own ("Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # ValueError: stdout has no descriptor
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def filtered(
    write: Callable[[dict[str, Any]], None], text: str, plugins: PluginManager
) -> Callable[[dict[str, Any]], None]:
    """``write`` for the entries ``text`` matches, at most ``limit(n)`` of them, redacted."""
    query = compile_query_option(text, plugins)
    if query is None:
        return write
    written = 0

    def write_matching(entry: dict[str, Any]) -> None:
        nonlocal written
        if (query.limit is None or written < query.limit) and query(entry):
            written += 1
            write(dict(query.redact(entry)))

    return write_matching


def open_store(path: Path, max_bytes: int) -> SqliteStore:
    """The hub's store in ``--db``, or a one-line error saying why it cannot be opened."""
    # imported by the commands that serve the dashboard, not by all those that import this module
    import sqlite3

    from mizu_server.store import DatabaseInUseError, SqliteStore

    try:
        return SqliteStore(path, max_bytes)
    except DatabaseInUseError as error:
        raise click.ClickException(f"{error}: stop it or pick another --db") from None
    except (OSError, sqlite3.Error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise click.ClickException(
            f"cannot open --db {path}: {reason}; pick another with --db"
        ) from None


def read_rules(path: str) -> tuple[str, Rules]:
    """The API rules file's text and rules; what is wrong with it is the command's error."""
    from mizu_server.rules import RulesError, load_rules  # with YAML: for --rules only

    try:
        text = Path(path).read_text(encoding="utf-8")
        return text, load_rules(text, path)
    except (RulesError, OSError, UnicodeDecodeError) as error:
        raise click.ClickException(str(error)) from None


STOP_DEADLINE = 8.0
"""Seconds after Ctrl-C or SIGTERM by which a serving process has ended, whatever holds it."""
DISSECT_STOP_DEADLINE = 4.0
"""The same for ``mizu dissect``, which has nothing to hand over when it stops."""


def stop_deadline(seconds: float = STOP_DEADLINE) -> None:
    """From now on the process has ``seconds`` to end: a plugin that swallows every
    interruption cannot keep it alive. Past them, the stacks of its threads (the culprit's
    among them) are printed and it exits."""
    faulthandler.dump_traceback_later(seconds, exit=True)


def stopping(stop: Callable[[], None]) -> Callable[[], None]:
    """A signal handler that calls ``stop`` and starts the :func:`stop_deadline`."""

    def handler() -> None:
        stop_deadline()
        stop()

    return handler


@contextlib.contextmanager
def interrupting(watchdog: Watchdog | None) -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt in this thread, whatever a plugin run on it
    is doing; the plugin call under way (``watchdog``'s), if it had been busy for a while, is
    named; and the :func:`stop_deadline` of ``mizu dissect`` starts."""

    def interrupt(signum: int, frame: object) -> None:
        stop_deadline(DISSECT_STOP_DEADLINE)
        stuck = watchdog.current() if watchdog is not None else None
        if stuck is not None and stuck.seconds >= BUSY_SECONDS:
            click.echo(f"mizu: interrupted: {stuck.busy()}", err=True)
        raise KeyboardInterrupt

    # a background job's Ctrl-C stays the terminal's
    with handling_stop_signals(interrupt, unless_ignored=True):
        yield


@contextlib.contextmanager
def handling_stop_signals(handler: signal._HANDLER, unless_ignored: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` for the duration (not those ignored, with
    ``unless_ignored``); then to what handled them before."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum, before in previous.items():
        if not (unless_ignored and before is signal.SIG_IGN):
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
