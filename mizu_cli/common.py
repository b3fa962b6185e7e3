"""What several ``mizu`` commands share: loading plugins, table output, the summary line,
query filtering."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import click
import importlib_metadata

from mizu_core.model import Endpoint
from mizu_core.plugins import ENTRY_POINT_GROUP, PluginManager
from mizu_core.query import Query, QueryError, compile_query
from mizu_core.views import entry_row


def load_plugins(allow: str | None, deny: str | None) -> PluginManager:
    """The installed plugins less those left out; a plugin that cannot load is reported."""
    manager = PluginManager().discover(
        allow=installed_plugin_names(allow, "--plugins") if allow else None,
        deny=installed_plugin_names(deny, "--no-plugins") if deny else (),
    )
    for name, reason in sorted(manager.load_failures.items()):
        click.echo(f"mizu: plugin {name} not loaded: {reason}", err=True)
    return manager


def installed_plugin_names(names: str, option: str) -> list[str]:
    """The comma-separated plugin ``names`` of ``option``; a name no installed plugin has is
    a usage error (a typo would otherwise dissect with fewer plugins, or all of them)."""
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    installed = {
        entry_point.name for entry_point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
    unknown = [name for name in wanted if name not in installed]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}: no such plugin (installed: {', '.join(sorted(installed))})",
            param_hint=f"'{option}'",
        )
    return wanted


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


class TableSink:
    """Entries as aligned lines, like tshark's default output."""

    def __init__(self, plugins: PluginManager, stream: IO[str]) -> None:
        self.plugins = plugins
        self.stream = stream

    def write(self, entry: dict[str, Any]) -> None:
        row = entry_row(self.plugins, entry)
        started = time.strftime("%H:%M:%S", time.gmtime(entry["timestamp"] / 1000))
        src, dst = entry["src"], entry["dst"]
        self.stream.write(
            f"{started}.{entry['timestamp'] % 1000:03d} {row['proto']['abbr']:<6} "
            f"{Endpoint(src['ip'], src['port'])} → {Endpoint(dst['ip'], dst['port'])}  "
            f"{row['method']} {row['summary']} {row['status']} "
            f"{entry['elapsedTime']:.1f}ms\n"
        )

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
    if any(source.get("truncated_file") for source in stats["capture"]):
        parts.append("file truncated")
    parts.append(
        "plugin errors: " + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none")
    )
    return "mizu: " + ", ".join(parts)


def compile_query_option(text: str, plugins: PluginManager, option: str = "-q") -> Query | None:
    """The query an option gives (None when empty); a syntax error is a usage error."""
    if not text:
        return None
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
