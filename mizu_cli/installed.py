"""``mizu plugins`` and ``mizu version``: what is installed."""

from __future__ import annotations

import click

from mizu_cli.common import load_plugins, with_plugin_options
from mizu_core import __version__
from mizu_core.compiled import package_build
from mizu_core.plugins import installed_plugins


@click.command()
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


@click.command()
def version() -> None:
    """Print the version of Mizu and of every installed plugin, and which build runs: compiled
    (the packet path as C extensions) or pure Python (MIZU_PURE_PYTHON=1, or no C compiler at
    install). The plugins are not loaded (``mizu plugins`` does, and says which fail to)."""
    core = package_build("mizu_core")
    click.echo(
        f"mizu {__version__} "
        f"({core.describe() if core is not None else 'pure Python: not compiled at install'})"
    )
    for entry_point in installed_plugins():
        package = entry_point.module.partition(".")[0]
        build = package_build(package) if package != "mizu_core" else None
        version = entry_point.dist.version if entry_point.dist is not None else "0"
        click.echo(f"  {entry_point.name} {version}" + (f" ({build.describe()})" if build else ""))
