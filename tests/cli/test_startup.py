"""What a command imports: each ``mizu`` run pays its imports before doing anything, so a
command imports what it uses and not what other commands or options need (the TLS plugin's
X.509 parser, YAML, the hub's store and web server, the filter language)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mizu_cli.main import LazyGroup, cli

DATA = Path(__file__).parent.parent / "data" / "core"
PROBE = """
import json, sys
from mizu_cli.main import cli
try:
    cli.main(sys.argv[2:], prog_name="mizu")
finally:
    with open(sys.argv[1], "w") as listing:
        json.dump(sorted(sys.modules), listing)
"""


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded when ``mizu ARGS`` has run, in a fresh interpreter."""
    listing = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        capture_output=True,
        check=True,
        cwd=tmp_path,  # no config file of a working directory's
    )
    return set(json.loads(listing.read_text()))


def test_dissect_imports_only_what_dissecting_needs(tmp_path: Path) -> None:
    modules = imported_by(
        tmp_path, "dissect", str(DATA / "http11-keepalive.pcap"), "--workers", "1"
    )
    assert "mizu_tls.plugin" in modules and "mizu_core.engine" in modules  # it did dissect
    unneeded = {
        "cryptography",  # only for certificates in clear and for a key log
        "yaml",  # no config file, no --set
        "mizu_server.store",
        "sqlite3",
        "hashlib",  # OpenSSL's library: JA4 fingerprints are hashed with the first ClientHello
        "mizu_server.rules",
        "aiohttp",
        "mizu_core.query",  # no -q
        "mizu_core.redact",  # no --redact
        "mizu_core.parallel",  # one worker
        "email.parser",  # plugin versions are read when shown
        # A plugin's dissector loads with the first connection it claims: none here is
        # AMQP, TLS or Kafka with compressed batches.
        "pamqp",
        "mizu_amqp.connection",
        "mizu_tls.dissector",
        "lz4",
        "cramjam",
    }
    assert modules & unneeded == set()


def test_help_and_version_import_no_command_and_no_plugin(tmp_path: Path) -> None:
    plugins = {"mizu_http", "mizu_tls", "mizu_amqp", "mizu_kafka", "mizu_redis"}
    listed = imported_by(tmp_path, "--help")
    assert {name.partition(".")[0] for name in listed} & {"mizu_core", *plugins} == set()
    assert {name for name in listed if name.startswith("mizu_cli.")} == {"mizu_cli.main"}
    versions = imported_by(tmp_path, "version")  # which loads each compiled group's library
    assert {f"{plugin}.plugin" for plugin in plugins} & versions == set()
    assert "mizu_core.engine" not in versions


@pytest.mark.parametrize("name", sorted(LazyGroup.lazy_commands))
def test_help_lists_each_command_with_its_own_summary(name: str) -> None:
    """``mizu --help`` shows the summaries of :attr:`LazyGroup.lazy_commands`, so as not to
    import every command: each must be the first sentence of the command's help."""
    target, summary = LazyGroup.lazy_commands[name]
    module, attribute = target.split(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    assert command.get_short_help_str(limit=1000) == summary
    assert name in cli.list_commands(click.Context(cli))


GARBAGE_PROBE = """
import gc, json, sys, weakref
from mizu_cli.main import cli
try:
    cli.main(sys.argv[2:], prog_name="mizu", standalone_mode=False)
except Exception as error:
    failure = type(error).__name__
else:
    failure = ""
class Node:
    pass
node = Node()
node.itself = node  # a cycle: only the collector frees it
freed = weakref.ref(node)
del node
gc.collect()
with open(sys.argv[1], "w") as report:
    json.dump(
        {
            "failure": failure,
            "enabled": gc.isenabled(),
            "frozen": gc.get_freeze_count(),
            "cycle_freed": freed() is None,
        },
        report,
    )
"""


def collector_after(tmp_path: Path, *args: str) -> dict[str, object]:
    """What ``mizu ARGS`` left of the cyclic garbage collector, in a fresh interpreter."""
    report = tmp_path / "collector.json"
    subprocess.run(
        [sys.executable, "-c", GARBAGE_PROBE, str(report), *args],
        capture_output=True,
        check=True,
        cwd=tmp_path,
    )
    return dict(json.loads(report.read_text()))


def test_dissect_freezes_what_start_up_made_and_still_collects_garbage(tmp_path: Path) -> None:
    after = collector_after(
        tmp_path, "dissect", str(DATA / "http11-keepalive.pcap"), "--workers", "1"
    )
    assert after["failure"] == ""
    # the modules and plugins are out of the collector's passes; what comes later is not
    assert isinstance(after["frozen"], int) and after["frozen"] > 10_000
    assert after["enabled"] is True and after["cycle_freed"] is True
    failed = collector_after(tmp_path, "dissect", str(tmp_path / "missing.pcap"))
    assert failed["failure"] != ""  # start-up failed: the collector runs again all the same
    assert failed["enabled"] is True and failed["cycle_freed"] is True
