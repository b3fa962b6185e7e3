"""``mizu tap --local`` / ``mizu tap --pcap``: tapper and hub in this one process.

The tapper runtime (:mod:`mizu_server.tapper`, the one a cluster's nodes run) captures on a
thread; the hub serves on the event loop. Entries reach the hub by a direct call
(:class:`~mizu_server.tapper_client.InProcessShipper`: no loopback, no msgpack); the hub's own
port is left out of the capture so that the dashboard does not watch itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
import webbrowser
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from mizu_cli.common import (
    TLS_KEYLOG_HELP,
    TableSink,
    check_tls_keylog,
    compile_query_option,
    configured_plugins,
    discard_standard_output,
    open_store,
    pairing_lines,
    read_rules,
    stopping,
    summary_line,
    with_tls_keylog,
)
from mizu_cli.config import (
    MIN_DB_SIZE,
    Config,
    check_db_size,
    parse_size,
    with_cluster_tap_options,
)
from mizu_core.capture import CaptureError, FileSource, LiveSource, PacketSource
from mizu_core.emit import JsonlSink
from mizu_core.plugins import PluginManager
from mizu_core.redact import Redactor, UserAgentFilter
from mizu_server.app import create_app
from mizu_server.hub import LOCAL_HOSTS, Hub, HubSettings
from mizu_server.store import SqliteStore
from mizu_server.tapper import KeepingFileSource, RecordingLiveSource, Tapper, redactor_for
from mizu_server.tapper_client import InProcessShipper

DEFAULT_DB = Path.home() / ".mizu" / "local" / "entries.db"
REPLAY_COMMIT_SECONDS = 60.0
"""How long a finished replay waits for the hub to store its entries before saying so."""
CAPTURE_BUFFER = "256MB"
"""The kernel's capture buffer per interface by default. Here the capture thread shares the
interpreter with the hub (its store, the API, OpenAPI inference) and the machine with the
traffic's own programs, so it stalls for seconds at times, and what the buffer cannot hold
meanwhile is lost. Under a paced load on loopback, other work keeping both cores busy (load
average 5 to 7 on 2 cores), 32 MB lost a third of the requests at 7,900 requests/s, 128 MB none
at 8,500, 256 MB none at 7,700 and at 10,900."""
MIN_CAPTURE_BUFFER = "1MB"
PRINT_FLUSH_SECONDS = 0.05
"""How long an entry ``-o jsonl`` printed may wait in the output's buffer. A write to standard
output per entry cost the capture thread twice what encoding the entry did, and woke the
reader as often."""


def open_replays(paths: Sequence[str], keep_packets: bool) -> list[FileSource]:
    """The ``--pcap`` files, every one checked before the replay starts, as ``mizu dissect``
    does: a file that cannot be read would otherwise end the replay, the files after it unread."""
    try:
        return [KeepingFileSource(path) if keep_packets else FileSource(path) for path in paths]
    except CaptureError as error:
        raise click.ClickException(str(error)) from None


def headless() -> bool:
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


@click.command()
@click.argument("pod_regex", required=False)
@click.option("--local", is_flag=True, help="Capture this machine's interfaces, no cluster.")
@click.option(
    "-i",
    "--interface",
    "interfaces",
    multiple=True,
    metavar="IFACE",
    help="Interface to capture (repeatable; default: any, loopback included).",
)
@click.option(
    "--pcap",
    "pcaps",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Replay capture files into the dashboard instead of capturing (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["jsonl", "table"]),
    help="Also print entries to stdout as they come.",
)
@click.option(
    "-f",
    "--filter",
    "bpf_filter",
    default="",
    metavar="BPF",
    help="Capture filter, as tcpdump's (e.g. 'tcp port 80 or port 6379'); the dashboard's own "
    "port is left out whatever it says. With --local only.",
)
@click.option(
    "-w",
    "--write",
    "write_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the captured packets to this pcap file.",
)
@click.option(
    "-B",
    "--buffer-size",
    show_default=CAPTURE_BUFFER,
    metavar="SIZE",
    callback=lambda _context, _parameter, text: check_capture_buffer(text),
    help="The kernel's capture buffer per interface (tcpdump's -B): what it holds while Mizu "
    "is busy; beyond it, packets are dropped and counted. With --local only.",
)
@click.option("-p", "--gui-port", default=8899, show_default=True, help="Port of the dashboard.")
@click.option("--no-browser", is_flag=True, help="Do not open the dashboard in a browser.")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    help="Where the hub keeps entries (kept across runs; one mizu at a time).",
)
@click.option(
    "--max-entries-db-size",
    default="200MB",
    show_default=True,
    metavar="SIZE",
    callback=check_db_size,
    help=f"tap.max-entries-db-size: beyond it, the oldest entries are evicted (at least "
    f"{MIN_DB_SIZE}).",
)
@click.option(
    "--insertion-filter",
    default="",
    help="Store only the entries this query matches (docs/filter.md).",
)
@click.option(
    "--traffic-validation-file",
    "rules_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="API rules (YAML) every HTTP entry is checked against; see the README.",
)
@click.option(
    "--no-redact",
    is_flag=True,
    help="tap.redact=false: store secrets as captured (by default the values of tokens, "
    "passwords, cookies, keys in headers, query strings and bodies become [REDACTED]).",
)
@click.option(
    "--redact-pattern",
    "redact_patterns",
    multiple=True,
    metavar="REGEX",
    help="Another sensitive name (a regular expression searched in the name, lower-cased, "
    "letters and digits only); repeatable.",
)
@click.option(
    "--ignored-user-agent",
    "ignored_user_agents",
    multiple=True,
    metavar="REGEX",
    help="tap.ignored-user-agents: drop HTTP pairs whose User-Agent matches (e.g. kube-probe, "
    "prometheus); repeatable.",
)
@click.option(
    "--pcap-export",
    is_flag=True,
    help="tap.pcap-export: keep raw packets per connection for GET /pcap (off by default: "
    "they carry the secrets that redaction removes).",
)
@click.option(
    "--tls-keylog",
    type=click.Path(dir_okay=False),
    metavar="KEYLOG",
    help=TLS_KEYLOG_HELP + " Followed while capturing: secrets appended later count too. "
    "With --local or --pcap only.",
)
@with_cluster_tap_options
def tap(
    pod_regex: str | None,
    local: bool,
    interfaces: tuple[str, ...],
    pcaps: tuple[str, ...],
    output: str | None,
    bpf_filter: str,
    write_path: Path | None,
    buffer_size: int | None,
    gui_port: int,
    no_browser: bool,
    db_path: Path,
    max_entries_db_size: str,
    insertion_filter: str,
    rules_path: Path | None,
    no_redact: bool,
    redact_patterns: tuple[str, ...],
    ignored_user_agents: tuple[str, ...],
    pcap_export: bool,
    tls_keylog: str | None,
    **cluster_options: Any,
) -> None:
    """Watch API traffic live in the dashboard.

    \b
    In the current kube context (hub and tappers deployed, removed on Ctrl-C):
      mizu tap                         pods of the context's namespace
      mizu tap '^api' -n shop -n auth  pods matching a regex in two namespaces
      mizu tap -A --dry-run            what it would tap and create, changing nothing
    See the README's Kubernetes and Permissions sections for what it creates.

    \b
    On this machine, no cluster:
      mizu tap --local                 all interfaces, loopback included
      mizu tap --local -i lo -o table  one interface, entries also printed
      mizu tap --local -f 'port 6379'  only what a capture filter (BPF) lets through
      mizu tap --pcap capture.pcap     replay files into the dashboard
      mizu tap --local --tls-keylog ~/keys.log   decrypt what SSLKEYLOGFILE clients write
    """
    if not local and not pcaps:
        if tls_keylog:
            raise click.UsageError(
                "--tls-keylog decrypts with this machine's key log: use it with --local or "
                "--pcap (in a cluster, Mizu reads no application's secrets)"
            )
        if bpf_filter or buffer_size is not None:
            raise click.UsageError(
                f"{'-f filters' if bpf_filter else '-B sizes'} this machine's capture: use it "
                "with --local (in a cluster the tappers capture the tapped pods' traffic)"
            )
        from mizu_cli.cluster import tap_in_cluster  # imports the Kubernetes client

        tap_in_cluster(
            pod_regex,
            gui_port=gui_port,
            no_browser=no_browser,
            max_entries_db_size=max_entries_db_size,
            rules_path=rules_path,
            no_redact=no_redact,
            redact_patterns=redact_patterns,
            ignored_user_agents=ignored_user_agents,
            pcap_export=pcap_export,
            **cluster_options,
        )
        return
    if pod_regex:
        raise click.UsageError("POD_REGEX selects pods in a cluster; --local taps interfaces")
    if pcaps and (interfaces or write_path or bpf_filter or buffer_size is not None):
        raise click.UsageError("--pcap replays files: -i, -f, -w and -B apply to live capture only")

    config = Config.load(cluster_options["config_path"], cluster_options["assignments"])
    if rules_path is None:
        configured = config["tap.traffic-validation-file"]
        rules_path = Path(configured) if configured else None
    rules = read_rules(str(rules_path))[1] if rules_path is not None else None
    plugins = configured_plugins(with_tls_keylog(config["plugins"], tls_keylog))
    check_tls_keylog(plugins, tls_keylog)
    compile_query_option(insertion_filter, plugins, "--insertion-filter")
    replays = open_replays(pcaps, keep_packets=pcap_export)
    settings = HubSettings(
        db_path=db_path,
        max_db_bytes=parse_size(max_entries_db_size),
        insertion_filter=insertion_filter,
        allowed_hosts=LOCAL_HOSTS,
        rules=rules,
        pcap_export=pcap_export,
    )
    stdout = sys.stdout
    printer: JsonlSink | TableSink | None = None
    if output == "jsonl":
        printer = JsonlSink(stdout)
    elif output == "table":
        printer = TableSink(plugins, stdout)
    try:
        redactor = redactor_for(False if no_redact else list(redact_patterns), plugins)
        ignored = UserAgentFilter(ignored_user_agents)
    except re.error as error:
        raise click.BadParameter(f"not a regular expression: {error}") from None
    source: LiveSource | None = None
    if not pcaps:
        bpf = capture_filter(bpf_filter, gui_port)
        buffer = capture_buffer_bytes(CAPTURE_BUFFER) if buffer_size is None else buffer_size
        try:
            if write_path is not None or pcap_export:
                source = RecordingLiveSource(
                    interfaces or ("any",),
                    bpf,
                    write_path,
                    keep_packets=pcap_export,
                    buffer_size=buffer,
                )
            else:
                source = LiveSource(interfaces or ("any",), bpf, buffer_size=buffer)
        except CaptureError as error:
            raise click.ClickException(str(error)) from None
    try:
        # the hub closes the store when it stops; closing() is for a run that fails before the
        # hub starts (closing twice does nothing)
        with closing(open_store(db_path, settings.max_db_bytes)) as store:
            session = LocalSession(plugins, settings, store, printer, redactor, ignored)
            asyncio.run(
                session.run(
                    gui_port, [source] if source else replays, not (no_browser or headless())
                )
            )
    finally:
        if source is not None:
            source.close()
    session.close_printer()
    stats = session.tapper.engine.stats()
    shipped = session.shipper.stats
    click.echo(
        f"{summary_line(stats)}, {shipped.acked_entries:,} sent to the hub, {shipped.shed:,} shed",
        err=True,
    )
    for line in pairing_lines(stats):
        click.echo(line, err=True)


def check_capture_buffer(text: str | None) -> int | None:
    """``-B``: None when not given, else a size of at least :data:`MIN_CAPTURE_BUFFER`."""
    return None if text is None else capture_buffer_bytes(text)


def capture_buffer_bytes(text: str) -> int:
    size = parse_size(text)
    if size < parse_size(MIN_CAPTURE_BUFFER):
        raise click.BadParameter(f"{text} is too small a capture buffer (write e.g. 256MB)")
    return size


def capture_filter(bpf_filter: str, gui_port: int) -> str:
    """The user's capture filter (tcpdump's syntax), less the dashboard's own traffic, which
    would otherwise feed itself: each page load captured, stored and shown."""
    own_traffic = f"not (tcp port {gui_port} and (host 127.0.0.1 or host ::1))"
    return f"({bpf_filter}) and {own_traffic}" if bpf_filter.strip() else own_traffic


class LocalSession:
    """One run: the hub on 127.0.0.1 and the tapper runtime feeding it in this process."""

    def __init__(
        self,
        plugins: PluginManager,
        settings: HubSettings,
        store: SqliteStore,
        printer: JsonlSink | TableSink | None = None,
        redactor: Redactor | None = None,
        ignored: UserAgentFilter | None = None,
    ) -> None:
        self.hub = Hub(settings, plugins, store)
        self.printer = printer
        self.printed = 0
        """Entries printed, counted on the capture thread."""
        self._flushed = 0
        self._printing = threading.Lock()
        self.tapper_state = self.hub.connect_tapper("local", "this process")
        """The hub counts this process's tapper as it counts those that connect."""
        self.shipper = InProcessShipper(self.submit, self.hub.submit_packets)
        self.tapper = Tapper(
            plugins,
            self.shipper,
            "local",
            redactor=redactor,
            ignored=ignored,
            also=self.print if printer is not None else None,
            pcap_export=settings.pcap_export,
        )
        self.hub.status_providers["local"] = self.tapper.status

    def submit(self, entries: list[Mapping[str, Any]]) -> asyncio.Future[int]:
        """A frame of entries to the hub, counted as a connected tapper's."""
        self.tapper_state.frames += 1
        committed = self.hub.submit(entries)
        committed.add_done_callback(self._count_stored)
        return committed

    def _count_stored(self, committed: asyncio.Future[int]) -> None:
        if not committed.cancelled() and committed.exception() is None:
            self.tapper_state.entries += committed.result()

    def print(self, entry: dict[str, Any]) -> None:
        """``-o``: the entry on stdout too, on the capture thread."""
        printer = self.printer  # the flushing thread may stop the printing meanwhile
        if printer is not None:
            try:
                printer.write(entry)
            except OSError as error:
                self.stop_printing(error)
            self.printed += 1

    async def flush_printed(self) -> None:
        """Write out what ``-o jsonl`` printed since the last flush, on a thread: a slow reader
        makes the flush wait, and the event loop must not."""
        printer = self.printer
        if not isinstance(printer, JsonlSink) or self.printed == self._flushed:
            return
        self._flushed = self.printed
        try:
            await asyncio.to_thread(printer.flush)
        except OSError as error:
            self.stop_printing(error)

    async def keep_flushing(self) -> None:
        """Flush ``-o jsonl``'s output every :data:`PRINT_FLUSH_SECONDS` while it prints."""
        while isinstance(self.printer, JsonlSink):
            await asyncio.sleep(PRINT_FLUSH_SECONDS)
            await self.flush_printed()

    def close_printer(self) -> None:
        if self.printer is not None:
            try:
                self.printer.close()
            except OSError as error:
                self.stop_printing(error)

    def stop_printing(self, error: OSError) -> None:
        """Standard output went away (``| head``) or cannot be written (disk full): print no
        more, and capture and feed the hub as before. The capture thread and the flushing
        thread may both find out: it is said once."""
        with self._printing:
            if self.printer is None:
                return
            self.printer = None
        discard_standard_output()
        reason = (
            "standard output closed"
            if isinstance(error, BrokenPipeError)
            else f"cannot write standard output ({error.strerror or error})"
        )
        click.echo(
            f"mizu: {reason}; entries are no longer printed (the dashboard still gets them)",
            err=True,
        )

    async def run(self, port: int, sources: Sequence[PacketSource], open_browser: bool) -> None:
        """Serve the dashboard on ``port`` and capture from ``sources`` until Ctrl-C."""
        runner = web.AppRunner(create_app(self.hub), access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, "127.0.0.1", port).start()
            except OSError as error:
                raise click.ClickException(
                    f"cannot serve on 127.0.0.1:{port}: {error.strerror or error} "
                    "(pick another port with --gui-port)"
                ) from None
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):  # before the URL: Ctrl-C stops cleanly
                loop.add_signal_handler(signum, stopping(stop.set))
            url = f"http://127.0.0.1:{port}/?token={self.hub.settings.access_token}"
            replays = [source for source in sources if isinstance(source, FileSource)]
            what = f"{len(replays)} file(s)" if replays else ", ".join(s.name for s in sources)
            click.echo(f"mizu: dashboard at {url}  (capturing {what}; Ctrl-C to stop)", err=True)
            if open_browser:
                webbrowser.open(url)

            async def replayed() -> None:
                await self.announce_replay(len(replays))

            flushing = asyncio.create_task(self.keep_flushing(), name="mizu-print-flush")
            try:
                await self.tapper.run(sources, stop, when_read=replayed if replays else None)
            finally:
                flushing.cancel()
                self.tapper_state.connected = False
            if self.tapper.capture_error is not None:
                click.echo(f"mizu: capture stopped: {self.tapper.capture_error}", err=True)
        finally:
            await runner.cleanup()

    async def announce_replay(self, files: int) -> None:
        """Say that the replay is done once the hub has stored its entries, so that "still
        serving" means a dashboard that shows the whole replay."""
        stored = await self.shipper.flush(timeout=REPLAY_COMMIT_SECONDS)
        await self.flush_printed()  # a closed standard output is said before "still serving"
        pending = "" if stored else f" ({self.shipper.buffered():,} not yet stored)"
        click.echo(
            f"mizu: replayed {files} file(s), "
            f"{self.tapper.engine.dispatcher.stats.entries:,} entries{pending}; still serving",
            err=True,
        )
