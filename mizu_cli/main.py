"""The ``mizu`` command: the group of commands, each in a module of its own that is imported
when the command runs."""

from __future__ import annotations

import importlib
import logging

import click


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs: ``mizu dissect`` should not
    pay for aiohttp and the Kubernetes client at start-up, nor ``mizu --help`` for any
    command."""

    lazy_commands: dict[str, tuple[str, str]] = {
        "dissect": (
            "mizu_cli.dissect:dissect",
            "Dissect pcap/pcapng FILES and print their entries to stdout.",
        ),
        "plugins": (
            "mizu_cli.installed:plugins",
            "List the installed plugins: protocols, priority (lower is tried first) and ports.",
        ),
        "version": (
            "mizu_cli.installed:version",
            "Print the version of Mizu and of every installed plugin, and which build runs: "
            "compiled (the packet path as C extensions) or pure Python (MIZU_PURE_PYTHON=1, or "
            "no C compiler at install).",
        ),
        "tap": ("mizu_cli.local:tap", "Watch API traffic live in the dashboard."),
        "check": (
            "mizu_cli.cluster:check",
            "Pre-flight checks: the API, its version, every permission Mizu needs, leftovers.",
        ),
        "clean": (
            "mizu_cli.cluster:clean",
            "Remove every object Mizu created in the cluster (leftovers of any earlier run).",
        ),
        "view": (
            "mizu_cli.cluster:view",
            "Re-open the dashboard of a running deployment (port-forward until Ctrl-C).",
        ),
        "logs": (
            "mizu_cli.cluster:logs",
            "Write the hub's and every tapper's log into a zip file.",
        ),
        "hub": (
            "mizu_cli.agents:hub",
            "Run the hub alone: the in-cluster entry point (the chart's and `mizu tap`'s hub pod).",
        ),
        "tapper": (
            "mizu_cli.agents:tapper",
            "Run a tapper alone: capture, dissect, and send entries to the hub.",
        ),
        "config": (
            "mizu_cli.config:config_command",
            "Print the effective config as YAML (file, then --set); -r writes the defaults.",
        ),
    }
    """A command's ``module:attribute`` and the summary that ``mizu --help`` lists for it:
    the first sentence of its help, which a test keeps equal to the command's own."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands and name not in self.commands:
            module, attribute = self.lazy_commands[name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, as click lists them, without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            # a command not imported yet stands in as one with its summary for help
            command = self.commands.get(name) or click.Command(
                name, help=self.lazy_commands[name][1]
            )
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``-V``: the version, as click's version option prints it (read from the core package
    only then: importing it is most of the start-up that ``mizu --help`` would pay)."""
    if not value or ctx.resilient_parsing:
        return
    from mizu_core import __version__

    click.echo(f"mizu, version {__version__}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="How much Mizu tells on stderr.",
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version and exit.",
)
def cli(log_level: str) -> None:
    """Mizu: see the API traffic between your pods, live.

    \b
    Watch this machine's traffic in the dashboard (no cluster needed):
      mizu tap --local
    Deploy into the current kube context and tap pods whose name matches:
      mizu tap '^api' -n shop
    Dissect a capture file:
      mizu dissect capture.pcap -o table
    List the protocols Mizu understands:
      mizu plugins

    \b
    Reference (in the project's docs/ folder):
      docs/entries.md   the entries, their list rows and detail views
      docs/filter.md    the filter language (-q, the dashboard, the API)
      docs/api.md       the hub's HTTP and WebSocket API
      docs/plugins.md   writing a plugin
    """
    logging.basicConfig(level=log_level.upper(), format="mizu: %(levelname)s %(name)s: %(message)s")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
