"""``mizu tap --local`` / ``mizu tap --pcap``: a hub and its tapper, two processes.

The tapper runtime (:mod:`mizu_server.tapper`, the one a cluster's nodes run) runs in a process
of its own, forked from the hub's once the capture is open: capture, dissection and redaction
on one core, the hub (its store, OpenAPI inference, the dashboard) on another, where one
interpreter's lock held both to one core. The tapper ships its entries as a node's tapper does,
over the hub's ``/wsTapper`` (frames, acks, reports), on a Unix socket in a folder only this
user can enter, which no capture sees. The hub's own port is left out of the capture so that
the dashboard does not watch itself.

Ctrl-C (or SIGTERM to the hub) stops both: the tapper hands over what it holds and prints the
closing summary. A tapper process that dies is said, with its exit code; the hub keeps serving
what it stored until Ctrl-C, and the command then exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import webbrowser
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from mizu_cli.common import (
    STOP_DEADLINE,
    TLS_KEYLOG_HELP,
    TableSink,
    check_tls_keylog,
    compile_query_option,
    configured_plugins,
    discard_standard_output,
    open_store,
    pairing_lines,
    read_rules,
    stop_deadline,
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
from mizu_server.hub import DRAIN_SECONDS, LOCAL_HOSTS, Hub, HubSettings
from mizu_server.store import SqliteStore
from mizu_server.tapper import KeepingFileSource, RecordingLiveSource, Tapper, redactor_for
from mizu_server.tapper_client import TapperClient

DEFAULT_DB = Path.home() / ".mizu" / "local" / "entries.db"
REPLAY_COMMIT_SECONDS = 60.0
"""How long a finished replay waits for the hub to store its entries before saying so."""
CAPTURE_BUFFER = "256MB"
"""The kernel's capture buffer per interface by default. The capture shares the machine with
the hub and the traffic's own programs, so it stalls for seconds at times, and what the buffer
cannot hold meanwhile is lost. Under a paced load on loopback, other work keeping both cores
busy (load average 5 to 7 on 2 cores), 32 MB lost a third of the requests at 7,900
requests/s, 128 MB none at 8,500, 256 MB none at 7,700 and at 10,900 (capture and hub in one
process then)."""
MIN_CAPTURE_BUFFER = "1MB"
LOCAL_TAPPER = "local"
"""The tapper process's name, in entry ids and in the hub's status."""
GO = b"g"
"""What the hub writes to its tapper process once it serves."""
TAPPER_STOP_SECONDS = STOP_DEADLINE + 1.0
"""How long a stopping hub waits for its tapper process, which has :data:`STOP_DEADLINE` to
end by itself, before killing it."""
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
    sources: list[PacketSource] = [source] if source is not None else list(replays)
    # 0700: the hub's socket for its tapper is this user's alone, and no interface carries it
    channel = Path(tempfile.mkdtemp(prefix="mizu-tap-"))
    hub_socket = channel / "hub.sock"
    try:
        # the hub closes the store when it stops; closing() is for a run that fails before the
        # hub starts (closing twice does nothing)
        with closing(open_store(db_path, settings.max_db_bytes)) as store:
            runtime = TapperRuntime(
                plugins,
                sources,
                str(hub_socket),
                settings.token,
                printer,
                redactor,
                ignored,
                pcap_export,
            )
            # what start-up made (modules, plugins) lives as long as the run: left out of the
            # collector's full passes, in the hub and in the tapper that inherits it (-5 % of the
            # hub's instructions per entry, replaying a capture of the load test's traffic)
            gc.freeze()
            tapper = TapperProcess.start(runtime)
            session = LocalSession(plugins, settings, store, tapper)
            what = f"{len(replays)} file(s)" if replays else ", ".join(s.name for s in sources)
            asyncio.run(session.run(gui_port, hub_socket, what, not (no_browser or headless())))
    finally:
        if source is not None:
            source.close()
        shutil.rmtree(channel, ignore_errors=True)
    if session.failure is not None:
        raise click.ClickException(session.failure)


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


class TapperRuntime:
    """The tapper process's side of a run: capture, dissection, redaction, ``-o`` printing, and
    shipping to the hub over ``hub_socket`` as a node's tapper does (``/wsTapper``: frames,
    acks, reports). Key log secrets (``--tls-keylog``) are read here only."""

    def __init__(
        self,
        plugins: PluginManager,
        sources: Sequence[PacketSource],
        hub_socket: str,
        token: str,
        printer: JsonlSink | TableSink | None,
        redactor: Redactor | None,
        ignored: UserAgentFilter,
        pcap_export: bool,
    ) -> None:
        self.sources = sources
        self.hub_socket = hub_socket
        self.printer = printer
        self.printed = 0
        """Entries printed, counted on the capture thread."""
        self._flushed = 0
        self._printing = threading.Lock()
        self.client = TapperClient(
            "http://mizu/wsTapper",
            token,
            LOCAL_TAPPER,
            unix_socket=hub_socket,
            retry_delay=0.05,
            max_retry_delay=1.0,
        )
        self.tapper = Tapper(
            plugins,
            self.client,
            LOCAL_TAPPER,
            redactor=redactor,
            ignored=ignored,
            also=self.print if printer is not None else None,
            pcap_export=pcap_export,
        )

    def main(self, go: int) -> int:
        """The tapper process: waits for the hub's word on ``go`` (end of file: the hub did
        not start, and there is nothing to say), captures until Ctrl-C, SIGTERM or the hub's
        end, and prints the closing summary."""
        # until the hub serves, a Ctrl-C is the hub's to handle (it then closes ``go``)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.read(go, 1) != GO:
            return 0
        try:
            asyncio.run(self.run(go))
        finally:
            for source in self.sources:
                if isinstance(source, LiveSource):
                    source.close()  # and the file of -w written out
            # the hub's process removes the socket's folder as it ends, unless it was killed:
            # the last of the two to go leaves nothing behind
            shutil.rmtree(Path(self.hub_socket).parent, ignore_errors=True)
        self.close_printer()
        stats = self.tapper.engine.stats()
        shipped = self.client.stats
        click.echo(
            f"{summary_line(stats)}, {shipped.acked_entries:,} sent to the hub, "
            f"{shipped.shed:,} shed; tapper CPU {time.process_time():.1f} s",
            err=True,
        )
        for line in pairing_lines(stats):
            click.echo(line, err=True)
        return 0

    async def run(self, go: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping(stop.set))

        def hub_gone() -> None:
            # the hub's process ended without stopping this one: nobody takes the entries
            loop.remove_reader(go)
            if not stop.is_set():
                click.echo("mizu: the hub is gone; stopping the capture", err=True)
                stop.set()

        loop.add_reader(go, hub_gone)
        replays = sum(1 for source in self.sources if isinstance(source, FileSource))

        async def replayed() -> None:
            await self.announce_replay(replays)

        flushing = asyncio.create_task(self.keep_flushing(), name="mizu-print-flush")
        try:
            await self.tapper.run(self.sources, stop, when_read=replayed if replays else None)
        finally:
            flushing.cancel()
            loop.remove_reader(go)
        if self.tapper.capture_error is not None:
            click.echo(f"mizu: capture stopped: {self.tapper.capture_error}", err=True)

    async def announce_replay(self, files: int) -> None:
        """Say that the replay is done once the hub has stored its entries, so that "still
        serving" means a dashboard that shows the whole replay."""
        stored = await self.client.flush(timeout=REPLAY_COMMIT_SECONDS)
        await self.flush_printed()  # a closed standard output is said before "still serving"
        pending = "" if stored else f" ({self.client.buffered():,} not yet stored)"
        click.echo(
            f"mizu: replayed {files} file(s), "
            f"{self.tapper.engine.dispatcher.stats.entries:,} entries{pending}; still serving",
            err=True,
        )

    def print(self, entry: dict[str, Any], data: bytes) -> None:
        """``-o``: the entry on stdout too, on the capture thread; as JSON, the line is the
        data stored (encoded as ``-o jsonl`` encodes it) when that is JSON."""
        printer = self.printer  # the flushing thread may stop the printing meanwhile
        if printer is not None:
            try:
                if isinstance(printer, JsonlSink) and data[:1] == b"{":
                    printer.write_line(data + b"\n")
                else:
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


class TapperProcess:
    """The hub's handle on its tapper process, a fork of this one made before any thread or
    event loop: it inherits the opened capture, plugins and settings as they are."""

    def __init__(self, pid: int, go: int) -> None:
        self.pid = pid
        self._go: int | None = go
        self.exit_code: int | None = None
        """As :func:`os.waitstatus_to_exitcode` says it (minus the signal that killed it)."""
        self._exited: asyncio.Future[None] | None = None
        self._signalled = False

    @classmethod
    def start(cls, runtime: TapperRuntime) -> TapperProcess:
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the tapper process, which never returns from here
            os.close(write_end)
            code = 1
            try:
                code = runtime.main(read_end)
            except BaseException:
                traceback.print_exc()
            finally:
                # no interpreter shutdown: what the hub opened (the store) is the hub's
                with contextlib.suppress(OSError, ValueError):
                    sys.stdout.flush()
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                os._exit(code)
        os.close(read_end)
        return cls(pid, write_end)

    def go(self) -> None:
        """The hub serves: capture and ship."""
        assert self._go is not None
        os.write(self._go, GO)

    def exited(self) -> asyncio.Future[None]:
        """Done when the process has ended (:attr:`exit_code` then says how)."""
        if self._exited is None:
            self._exited = asyncio.ensure_future(asyncio.to_thread(self._wait))
        return self._exited

    def _wait(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)

    def signal(self, signum: int) -> None:
        self._signalled = True
        if self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def how_it_ended(self) -> str:
        code = self.exit_code
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name} (exit code {128 - code})"
        return f"exited with code {code}"

    async def end(self) -> None:
        """Once the hub stops: a process not signalled is told by the end of file on ``go``
        (it stops, or quits unsaid if it never got the word); one that has not ended within
        :data:`TAPPER_STOP_SECONDS` is killed."""
        if not self._signalled:
            self._close_go()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited()), TAPPER_STOP_SECONDS)
        except TimeoutError:
            click.echo(
                f"mizu: the tapper process did not stop within {TAPPER_STOP_SECONDS:.0f} s; "
                "killing it",
                err=True,
            )
            self.signal(signal.SIGKILL)
            await self.exited()
        self._close_go()

    def _close_go(self) -> None:
        if self._go is not None:
            os.close(self._go)
            self._go = None


class LocalSession:
    """One run's hub, on 127.0.0.1, fed by its tapper process."""

    def __init__(
        self,
        plugins: PluginManager,
        settings: HubSettings,
        store: SqliteStore,
        tapper: TapperProcess,
    ) -> None:
        self.hub = Hub(settings, plugins, store)
        self.tapper = tapper
        self.failure: str | None = None
        """Why the session ends in error: the tapper process ended before it was stopped."""
        self.hub.status_providers["local"] = self.tapper_status

    def tapper_status(self) -> dict[str, Any]:
        """What ``/status/tap`` shows of the tapper process: whether it runs, and its last
        report (capture counts, the kernel's drops, plugin counters, its CPU seconds)."""
        state = self.tapper.exit_code
        return {
            "pid": self.tapper.pid,
            "running": state is None,
            **({} if state is None else {"ended": self.tapper.how_it_ended()}),
            **self.last_report(),
        }

    def last_report(self) -> dict[str, Any]:
        for state in reversed(self.hub.tappers):
            if state.tapper_id == LOCAL_TAPPER:
                return state.reported
        return {}

    async def run(self, port: int, hub_socket: Path, what: str, open_browser: bool) -> None:
        """Serve the dashboard on ``port`` and the tapper on ``hub_socket`` until Ctrl-C."""
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
            await web.UnixSite(runner, str(hub_socket)).start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            def stopping_both(signum: int) -> None:
                # the tapper gets the signal too (a Ctrl-C at the terminal already sent it):
                # it stops, hands over what it holds and prints the closing summary
                stop_deadline(TAPPER_STOP_SECONDS + DRAIN_SECONDS)
                self.tapper.signal(signum)
                stop.set()

            for signum in (signal.SIGINT, signal.SIGTERM):  # before the URL: Ctrl-C stops cleanly
                loop.add_signal_handler(signum, stopping_both, signum)
            url = f"http://127.0.0.1:{port}/?token={self.hub.settings.access_token}"
            click.echo(f"mizu: dashboard at {url}  (capturing {what}; Ctrl-C to stop)", err=True)
            self.tapper.go()
            if open_browser:
                webbrowser.open(url)
            await self.watch(stop)
        finally:
            await self.tapper.end()
            if self.failure is None and self.tapper.exit_code:
                self.failure = f"the tapper process {self.tapper.how_it_ended()}"
            await runner.cleanup()

    async def watch(self, stop: asyncio.Event) -> None:
        """Until ``stop``; a tapper process that ends before is said, with how, and the hub
        keeps serving what it stored until Ctrl-C."""
        stopped = asyncio.create_task(stop.wait())
        exited = self.tapper.exited()
        either: set[asyncio.Future[Any]] = {stopped, exited}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if stopped.done():
            return
        how = self.tapper.how_it_ended()
        capture = self.last_report().get("capture", {})
        last = (
            f" (its last report: {capture.get('packets', 0):,} packets, "
            f"{capture.get('kernelDropped', 0):,} dropped by the kernel)"
            if capture
            else ""
        )
        self.failure = f"the tapper process {how}: the capture ended early{last}"
        click.echo(
            f"mizu: the tapper process (pid {self.tapper.pid}) {how}{last}; nothing more is "
            "captured, the dashboard keeps serving what it stored (Ctrl-C to stop)",
            err=True,
        )
        await stopped
