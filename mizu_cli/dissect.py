"""``mizu dissect``: capture files to entries, in this process or shared out among workers."""

from __future__ import annotations

import gc
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import click
import orjson

from mizu_cli.common import (
    TLS_KEYLOG_HELP,
    TableSink,
    check_tls_keylog,
    compile_query_option,
    configured_plugins,
    discard_standard_output,
    filtered,
    interrupting,
    pairing_lines,
    summary_line,
    with_plugin_options,
    with_tls_keylog,
)
from mizu_cli.config import Config, with_config_options
from mizu_core.capture import CaptureError, FileSource
from mizu_core.decode import UnsupportedLinkType
from mizu_core.emit import JsonlSink, OutputError, raising_output_errors
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager


class Progress:
    """A progress line on stderr while files are read; silent unless stderr is a terminal."""

    interval = 0.2
    """Seconds between redraws."""

    def __init__(self, total_bytes: int, status: Callable[[], tuple[int, int]]) -> None:
        self.status = status
        """Bytes read so far and entries made so far."""
        self.total = max(total_bytes, 1)
        self.enabled = sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r\x1b[K")

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            done, entries = self.status()
            done = min(done, self.total)
            fraction = done / self.total
            elapsed = time.monotonic() - started
            bar = "█" * int(fraction * 30)
            sys.stderr.write(
                f"\r{bar:<30} {fraction:6.1%}  {done / 1e6:,.0f} of {self.total / 1e6:,.0f} MB  "
                f"{entries:,} entries  {elapsed:.0f}s"
            )
            sys.stderr.flush()


class HarSink:
    """The HTTP entries, kept until the end and written as one HAR 1.2 log."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.entries: list[dict[str, Any]] = []

    def write(self, entry: dict[str, Any]) -> None:
        if entry["protocol"]["name"] == "http":
            self.entries.append(entry)

    def close(self) -> None:
        from mizu_server.har import har_log  # only for -o har: keeps start-up light

        json.dump(har_log(self.entries), self.stream, ensure_ascii=False, indent=2)
        self.stream.write("\n")
        self.stream.flush()


class OpenApiSink:
    """Entries fed to OpenAPI inference (bounded state); at the end one document per service,
    one per line (a single service's output is one plain JSON document)."""

    def __init__(self, stream: IO[str]) -> None:
        from mizu_server.oas import OasInference  # only for -o openapi: keeps start-up light

        self.stream = stream
        self.inference = OasInference()

    def write(self, entry: dict[str, Any]) -> None:
        self.inference.observe(entry)

    def close(self) -> None:
        for document in self.inference.documents():
            self.stream.write(json.dumps(document, ensure_ascii=False) + "\n")
        self.stream.flush()


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["jsonl", "table", "har", "openapi"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one entry per line (docs/entries.md); table: one line per entry, for "
    "reading; har: a HAR 1.2 log of the HTTP entries; openapi: an OpenAPI 3.1 document "
    "inferred per service, one JSON document per line.",
)
@click.option(
    "-q",
    "--query",
    default="",
    metavar="QUERY",
    help="Print only the entries this filter matches (the dashboard's filter language, "
    "docs/filter.md), e.g. 'http and response.status >= 500'.",
)
@click.option(
    "--response-timeout",
    type=float,
    default=30.0,
    callback=lambda ctx, param, value: positive_seconds(value),
    show_default=True,
    help="Seconds (of capture time) after which an unanswered request becomes an "
    "entry without a response.",
)
@click.option(
    "--tapper-id",
    default="file",
    show_default=True,
    help="Prefix of entry ids; ids are deterministic for a given file.",
)
@click.option(
    "--redact",
    is_flag=True,
    help="Replace secrets (tokens, passwords, cookies, keys in headers, query strings and "
    "bodies) with [REDACTED], as tappers do; off for local files.",
)
@click.option(
    "--workers",
    default="auto",
    show_default=True,
    metavar="N|auto",
    callback=lambda ctx, param, value: parse_workers(value),
    help="Processes that dissect: TCP connections are shared out whole among N workers, one "
    "per core; the output is the same as with one (same entries, same ids), in an order "
    "fixed for a given file and N. auto: as many as usable CPUs (at most 8), but 1 for "
    "files under 40 MB. --workers 1 is the single-process path.",
)
@click.option(
    "--tls-keylog",
    type=click.Path(dir_okay=False, exists=True),
    metavar="KEYLOG",
    help=TLS_KEYLOG_HELP,
)
@with_plugin_options
@with_config_options
def dissect(
    files: tuple[str, ...],
    output: str,
    query: str,
    response_timeout: float,
    tapper_id: str,
    redact: bool,
    workers: int | None,
    tls_keylog: str | None,
    allow: str | None,
    deny: str | None,
    config_path: Path,
    assignments: tuple[str, ...],
) -> None:
    """Dissect pcap/pcapng FILES and print their entries to stdout.

    Entries stream out while the files are read, so memory stays flat on large captures. A
    progress line shows on a terminal; a one-line summary ends on stderr.

    \b
    Examples:
      mizu dissect capture.pcap | jq .request.path
      mizu dissect a.pcap b.pcapng -o table
      mizu dissect capture.pcap --plugins http,tcp
      mizu dissect capture.pcap -q 'http and response.status >= 400'
      mizu dissect capture.pcap -o openapi > api.json
      mizu dissect big.pcap --workers 2
      mizu dissect capture.pcap --set plugins.http.max-body-size=4096
      mizu dissect https.pcap --tls-keylog keys.log -q 'tls.decrypted == true'
    """
    with starting_up():
        config = Config.load(config_path, assignments)
        plugins = configured_plugins(with_tls_keylog(config["plugins"], tls_keylog), allow, deny)
        check_tls_keylog(plugins, tls_keylog)
        sources = []
        for path in files:
            try:
                sources.append(FileSource(path))
            except CaptureError as error:
                raise click.ClickException(str(error)) from None
        if workers is None:
            # the workers' module is imported where more than one worker may run: --workers 1 is
            # how short runs and the benchmarks of the packet path start
            from mizu_core.parallel import auto_workers

            workers = auto_workers(sum(source.size for source in sources))
        stdout = sys.stdout
        sink: DissectSink
        if output == "har":
            sink = HarSink(stdout)
        elif output == "openapi":
            sink = OpenApiSink(stdout)
        elif workers > 1:
            sink = JsonlSink(stdout)  # writes the lines the workers encoded or rendered
        else:
            sink = JsonlSink(stdout) if output == "jsonl" else TableSink(plugins, stdout)
        settings = EngineSettings(tapper_id=tapper_id, response_timeout=response_timeout)
    try:
        if workers > 1:
            stats, failed = dissect_sharded(
                plugins, sources, sink, output, query, redact, settings, workers
            )
        else:
            stats, failed = dissect_in_process(plugins, sources, sink, query, redact, settings)
        try:
            sink.close()
        except OSError as error:
            raise OutputError(error) from error
    except OutputError as error:
        stop_writing(error)
    click.echo(summary_line(stats), err=True)
    for line in pairing_lines(stats):
        click.echo(line, err=True)
    if failed:
        sys.exit(1)


@contextmanager
def starting_up() -> Iterator[None]:
    """Loading the plugins and opening the files, without the cyclic garbage collector.

    Start-up makes some 25,000 objects (modules, classes, the plugins' declarations) that live
    as long as the run: the collector's passes while they are made free almost nothing, and
    afterwards its full passes, the interpreter's at exit among them, would walk them all
    again. So they are frozen out of its passes at the end of start-up (-43 million
    instructions a run, 7 % of an empty capture's; the run itself makes little cyclic
    garbage: one collection every 20,000 packets of HTTP)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.enable()


def stop_writing(error: OutputError) -> NoReturn:
    """End the run whose output cannot be written: quietly when its reader went away (``|
    head``), as tshark and other Unix tools do, with a message otherwise (a full disk)."""
    discard_standard_output()
    if error.reader_gone:
        # 128 + SIGPIPE, the status a shell shows for tshark or cat stopped the same way: the
        # output is incomplete, which `set -o pipefail` scripts can tell from a full run.
        sys.exit(141)
    raise click.ClickException(f"cannot write the output: {error.error.strerror or error.error}")


def positive_seconds(value: float) -> float:
    """``--response-timeout``: a finite number of seconds above zero."""
    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a number of seconds above zero")
    return value


def parse_workers(value: str) -> int | None:
    """``--workers``: a positive count, or None for auto."""
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r} is neither a positive number nor auto")
    return int(value)


DissectSink = JsonlSink | TableSink | HarSink | OpenApiSink


def dissect_in_process(
    plugins: PluginManager,
    sources: list[FileSource],
    sink: DissectSink,
    query: str,
    redact: bool,
    settings: EngineSettings,
) -> tuple[dict[str, Any], bool]:
    """The files through one engine, here; returns the stats and whether a file failed."""
    write = filtered(raising_output_errors(sink.write), query, plugins)
    if redact:
        from mizu_core.redact import Redactor, redacting  # for --redact only

        write = redacting(write, Redactor(protocols=plugins.declared_protocols()))
    engine = Engine(plugins, write, settings)
    failed = False
    done_bytes = 0

    def status() -> tuple[int, int]:
        current = getattr(engine.sources[-1], "consumed", 0) if engine.sources else 0
        return done_bytes + current, engine.dispatcher.stats.entries

    with Progress(sum(source.size for source in sources), status), interrupting(engine.watchdog):
        for source in sources:
            try:
                engine.run(source)
            except UnsupportedLinkType as error:
                click.echo(f"mizu: {source.name}: {error}", err=True)
                failed = True
            engine.finish()
            done_bytes += source.size
    return engine.stats(), failed


def dissect_sharded(
    plugins: PluginManager,
    sources: list[FileSource],
    sink: DissectSink,
    output: str,
    query: str,
    redact: bool,
    settings: EngineSettings,
    workers: int,
) -> tuple[dict[str, Any], bool]:
    """The files' connections shared out among ``workers`` processes; the workers filter,
    redact and render, this process merges their lines."""
    from mizu_core.parallel import ShardedDissection, ShardSettings, WorkerFailed

    compiled = compile_query_option(query, plugins)
    write_line: Callable[[bytes], None]
    if isinstance(sink, JsonlSink):
        write_line = raising_output_errors(sink.write_line)
    else:
        write_entry = raising_output_errors(sink.write)

        def write_line(line: bytes) -> None:
            write_entry(orjson.loads(line))

    sharded = ShardedDissection(
        plugins,
        ShardSettings(
            workers=workers,
            engine=settings,
            output="table" if output == "table" else "jsonl",
            query=compiled,
            redact=redact,
        ),
        write_line,
        lines_together=isinstance(sink, JsonlSink),
    )
    failed = False
    sharded.start()
    try:
        with (
            Progress(
                sum(source.size for source in sources),
                lambda: (sharded.consumed, sharded.entries_written),
            ),
            interrupting(None),  # the workers name their plugins when they are stopped
        ):
            for source in sources:
                try:
                    sharded.run(source)
                except UnsupportedLinkType as error:
                    click.echo(f"mizu: {source.name}: {error}", err=True)
                    failed = True
            stats = sharded.finish()
    except WorkerFailed as error:
        raise click.ClickException(str(error)) from None
    except BaseException:
        sharded.stop()
        raise
    return stats, failed
