"""The ``mizu`` command."""

from __future__ import annotations

import logging
import sys
import threading
import time

import click

from mizu_cli.common import (
    TableSink,
    filtered,
    load_plugins,
    summary_line,
    with_plugin_options,
)
from mizu_core import __version__
from mizu_core.capture import CaptureError, FileSource
from mizu_core.decode import UnsupportedLinkType
from mizu_core.emit import JsonlSink
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginError, PluginManager

log = logging.getLogger("mizu")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="How much Mizu tells on stderr.",
)
@click.version_option(__version__, "-V", "--version", prog_name="mizu")
def cli(log_level: str) -> None:
    """Mizu: see the API traffic between your pods, live.

    \b
    Quick look at a capture file:
      mizu dissect capture.pcap -o table
    List the protocols Mizu understands:
      mizu plugins
    """
    logging.basicConfig(level=log_level.upper(), format="mizu: %(levelname)s %(name)s: %(message)s")


class Progress:
    """A progress line on stderr while files are read; silent unless stderr is a terminal."""

    def __init__(self, engine: Engine, total_bytes: int) -> None:
        self.engine = engine
        self.total = max(total_bytes, 1)
        self.done_bytes = 0
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
        while not self._stop.wait(0.2):
            source = self.engine.sources[-1] if self.engine.sources else None
            current = getattr(source, "consumed", 0)
            done = min(self.done_bytes + current, self.total)
            fraction = done / self.total
            elapsed = time.monotonic() - started
            bar = "█" * int(fraction * 30)
            sys.stderr.write(
                f"\r{bar:<30} {fraction:6.1%}  {done / 1e6:,.0f} of {self.total / 1e6:,.0f} MB  "
                f"{self.engine.dispatcher.stats.entries:,} entries  {elapsed:.0f}s"
            )
            sys.stderr.flush()


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one entry (CONTRACT section 2) per line; table: one line per entry, for reading.",
)
@click.option(
    "-q",
    "--query",
    default="",
    metavar="QUERY",
    help="Print only the entries this filter matches (the dashboard's filter language), e.g. "
    "'http and response.status >= 500'.",
)
@click.option(
    "--response-timeout",
    type=float,
    default=30.0,
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
@with_plugin_options
def dissect(
    files: tuple[str, ...],
    output: str,
    query: str,
    response_timeout: float,
    tapper_id: str,
    allow: str | None,
    deny: str | None,
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
    """
    plugins = load_plugins(allow, deny)
    try:
        plugins.configure({})
    except PluginError as error:
        raise click.ClickException(str(error)) from None
    stdout = sys.stdout
    sink = JsonlSink(stdout) if output == "jsonl" else TableSink(plugins, stdout)
    engine = Engine(
        plugins,
        filtered(sink.write, query, plugins),
        EngineSettings(tapper_id=tapper_id, response_timeout=response_timeout),
    )
    sources = []
    for path in files:
        try:
            sources.append(FileSource(path))
        except CaptureError as error:
            raise click.ClickException(str(error)) from None
    failed = False
    try:
        with Progress(engine, sum(source.size for source in sources)) as progress:
            for source in sources:
                try:
                    engine.run(source)
                except UnsupportedLinkType as error:
                    click.echo(f"mizu: {source.name}: {error}", err=True)
                    failed = True
                engine.finish()
                progress.done_bytes += source.size
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): stop quietly, as tshark does
        return
    sink.close()
    click.echo(summary_line(engine.stats()), err=True)
    if failed:
        sys.exit(1)


@cli.command()
@with_plugin_options
def plugins(allow: str | None, deny: str | None) -> None:
    """List the installed plugins: protocols, priority (lower is tried first) and ports."""
    manager = load_plugins(allow, deny)
    click.echo(f"{'PLUGIN':<14} {'VERSION':<9} {'PRIO':>5}  {'PROTOCOLS':<32} PORTS")
    for plugin in manager.plugins:
        names = ", ".join(
            f"{p.abbr} ({p.name} {p.version})".replace(" )", ")") for p in plugin.protocols
        )
        ports = ", ".join(map(str, plugin.ports)) or "-"
        click.echo(
            f"{plugin.name:<14} {plugin.version:<9} {plugin.priority:>5}  {names:<32} {ports}"
        )


@cli.command()
def version() -> None:
    """Print the version of Mizu and of every installed plugin."""
    click.echo(f"mizu {__version__}")
    manager = PluginManager().discover()
    for plugin in manager.plugins:
        click.echo(f"  {plugin.name} {plugin.version}")
    for name, reason in sorted(manager.load_failures.items()):
        click.echo(f"  {name} (not loaded: {reason})")


from mizu_cli.local import tap  # noqa: E402

cli.add_command(tap)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
