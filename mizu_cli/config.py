"""Mizu's settings: ``~/.mizu/config.yaml``, then ``--set key=value``, then flags.

Every key has a type; a key that is not known or a value that does not fit is an error that
names the key, so a typo never silently falls back to a default. ``plugins.<name>.<key>`` is
passed through to the plugin, which validates its own settings.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from mizu_core import __version__

DEFAULT_PATH = Path.home() / ".mizu" / "config.yaml"
DEFAULT_NAMESPACE = "mizu"
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
MIN_DB_SIZE = "1MB"
"""The smallest ``--max-entries-db-size``: an empty store takes some 50 KB, and a cap near that
evicts every entry as soon as it is stored."""


def parse_size(text: str) -> int:
    """``200MB``, ``1.5GiB``, ``500k`` or a number of bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not a size (write e.g. 200MB)")
    unit = match.group(2).lower()
    factor = _UNITS.get(unit[:1], 1)
    if "i" in unit:
        factor = 1 << {"k": 10, "m": 20, "g": 30, "t": 40}[unit[0]]
    return int(float(match.group(1)) * factor)


def db_size_too_small(text: str) -> str | None:
    """What is wrong with a database size cap below :data:`MIN_DB_SIZE`, or None; BadParameter
    for a text that is no size."""
    if parse_size(text) < parse_size(MIN_DB_SIZE):
        return f"{text} leaves no room for entries (write {MIN_DB_SIZE} or more)"
    return None


def check_db_size(ctx: click.Context, param: click.Parameter, text: str) -> str:
    """``--max-entries-db-size``: a size of at least :data:`MIN_DB_SIZE`, kept as written (the
    cluster passes it on to its hub's configuration)."""
    problem = db_size_too_small(text)
    if problem is not None:
        raise click.BadParameter(problem)
    return text


class ConfigError(click.ClickException):
    """A key that is not known or a value that does not fit; the message names the key."""


def _string(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"config key {key}: expected a string, got {value!r}")
    return str(value)


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"config key {key}: expected true or false, got {value!r}")


def _port(key: str, value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key}: expected a port number, got {value!r}") from None
    if isinstance(value, bool) or not 0 < port < 65536:
        raise ConfigError(f"config key {key}: {value!r} is not a port (1-65535)")
    return port


def _strings(key: str, value: Any) -> list[str]:
    """A list, or (from ``--set``) a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [_string(key, item) for item in value]
    raise ConfigError(f"config key {key}: expected a list of strings, got {value!r}")


def _regex(key: str, value: Any) -> str:
    text = _string(key, value)
    try:
        re.compile(text)
    except re.error as error:
        raise ConfigError(
            f"config key {key}: {text!r} is not a regular expression: {error}"
        ) from None
    return text


def _regexes(key: str, value: Any) -> list[str]:
    return [_regex(key, item) for item in _strings(key, value)]


def _redaction(key: str, value: Any) -> bool | list[str]:
    """``true`` (the default names), ``false`` (off) or names to redact besides the defaults
    (regular expressions, as ``--redact-pattern``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _regexes(key, value)


def _size(key: str, value: Any) -> str:
    text = _string(key, value)
    try:
        problem = db_size_too_small(text)
    except click.BadParameter:
        raise ConfigError(f"config key {key}: {text!r} is not a size (write e.g. 200MB)") from None
    if problem is not None:
        raise ConfigError(f"config key {key}: {problem}")
    return text


def _quantity(key: str, value: Any) -> str:
    text = _string(key, value)
    if not _QUANTITY.match(text):
        raise ConfigError(
            f"config key {key}: {text!r} is not a Kubernetes quantity (e.g. 100m, 1, 256Mi)"
        )
    return text


def _namespace(key: str, value: Any) -> str:
    text = _string(key, value)
    if not _DNS_LABEL.match(text):
        raise ConfigError(f"config key {key}: {text!r} is not a valid namespace name")
    return text


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = _string(key, value)
        if text not in choices:
            raise ConfigError(f"config key {key}: {text!r} is not one of {', '.join(choices)}")
        return text

    return check


def _resources(default_memory_limit: str) -> dict[str, tuple[Callable[[str, Any], Any], Any]]:
    return {
        "cpu-request": (_quantity, "50m"),
        "memory-request": (_quantity, "128Mi"),
        "cpu-limit": (_quantity, "1"),
        "memory-limit": (_quantity, default_memory_limit),
    }


Schema = Mapping[str, Any]
SCHEMA: Schema = {
    "mizu-resources-namespace": (_namespace, DEFAULT_NAMESPACE),
    "agent-image": (_string, f"mizu:{__version__}"),
    "image-pull-policy": (_choice("Always", "IfNotPresent", "Never"), "IfNotPresent"),
    "kube-config-path": (_string, ""),
    "kube-context": (_string, ""),
    "headless": (_boolean, False),
    "log-level": (_choice("debug", "info", "warning", "error"), "warning"),
    "telemetry": (_boolean, False),
    "tap": {
        "regex": (_regex, ".*"),
        "namespaces": (_strings, []),
        "all-namespaces": (_boolean, False),
        "ignored-user-agents": (_regexes, []),
        "redact": (_redaction, True),
        "max-entries-db-size": (_size, "200MB"),
        "pcap-export": (_boolean, False),
        "traffic-validation-file": (_string, ""),
        "gui-port": (_port, 8899),
        "interface": (_string, "any"),
    },
    "resources": {
        "hub": _resources("1Gi"),
        "tapper": _resources("1Gi"),
    },
}
"""Each leaf is (validator, default); ``plugins`` is open-ended and handled apart."""


def defaults() -> dict[str, Any]:
    def walk(schema: Schema) -> dict[str, Any]:
        return {
            key: walk(value) if isinstance(value, Mapping) else copy.deepcopy(value[1])
            for key, value in schema.items()
        }

    return {**walk(SCHEMA), "plugins": {}}


def _validate(document: Any, schema: Schema, prefix: str) -> dict[str, Any]:
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"config key {prefix or '(top)'}: expected a mapping of keys")
    result: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if not prefix and key == "plugins":
            result[key] = _plugins(value)
            continue
        spec = schema.get(key)
        if spec is None:
            raise ConfigError(f"unknown config key {name} (`mizu config` lists every key)")
        if isinstance(spec, Mapping):
            result[key] = _validate(value, spec, f"{name}.")
        else:
            result[key] = spec[0](name, value)
    return result


def _plugins(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ConfigError("config key plugins: expected plugins.<name>.<key> settings")
    return {str(name): dict(settings) for name, settings in value.items()}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_assignment(text: str) -> dict[str, Any]:
    """``tap.regex=^api`` as a nested mapping; the value is read as a YAML scalar."""
    # YAML is imported only when there is YAML to read or write: most runs have neither
    # a config file nor a --set, and the import is a good part of a short command's start-up
    import yaml

    key, separator, raw = text.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"--set {text!r}: write key=value, e.g. --set tap.gui-port=9000")
    value: Any = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, dict | list) and not raw.strip().startswith(("[", "{")):
        value = raw
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


class Config:
    """The effective settings. ``config["tap.regex"]`` reads a dotted key."""

    def __init__(self, values: dict[str, Any], path: Path) -> None:
        self.values = values
        self.path = path

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        assignments: Iterable[str] = (),
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Defaults, then the file at ``path``, then each ``--set``, then ``overrides``
        (dotted keys from flags the user gave)."""
        path = path or DEFAULT_PATH
        values = defaults()
        if path.is_file():
            import yaml

            try:
                document = yaml.safe_load(path.read_text())
            except yaml.YAMLError as error:
                raise ConfigError(f"{path}: not valid YAML: {error}") from None
            values = _merge(values, _validate(document, SCHEMA, ""))
        for assignment in assignments:
            values = _merge(values, _validate(parse_assignment(assignment), SCHEMA, ""))
        for key, value in (overrides or {}).items():
            values = _set(values, key, value)
        return cls(values, path)

    def __getitem__(self, key: str) -> Any:
        node: Any = self.values
        for part in key.split("."):
            node = node[part]
        return node

    @property
    def restricted(self) -> bool:
        """Any namespace but ``mizu``: Role instead of ClusterRole, tap only that namespace."""
        return bool(self["mizu-resources-namespace"] != DEFAULT_NAMESPACE)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.values, sort_keys=False, default_flow_style=False)


def _set(values: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set one flag's value, validated as the key's own type."""
    parts = dotted.split(".")
    spec: Any = SCHEMA
    for part in parts:
        spec = spec[part]
    nested: Any = spec[0](dotted, value)
    for part in reversed(parts):
        nested = {part: nested}
    return _merge(values, nested)


def write_defaults(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Config(defaults(), path).to_yaml())


config_options = [
    click.option(
        "--config-path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_PATH,
        show_default=True,
        help="The config file (YAML); `mizu config -r` writes one with every default.",
    ),
    click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one config key, e.g. --set tap.regex=^api (repeatable; flags win).",
    ),
]


def with_config_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(config_options):
        function = option(function)
    return function


# `mizu tap`'s options for a tap in the cluster, here rather than in cluster.py so that the
# command's definition does not import the Kubernetes client (0.4 s), which only a cluster
# tap needs.
cluster_tap_options = [
    click.option(
        "-n",
        "--namespaces",
        multiple=True,
        metavar="NS",
        help="Namespace whose pods to tap (repeatable; default: the kube context's namespace; "
        "tap.namespaces).",
    ),
    click.option(
        "-A", "--all-namespaces", is_flag=True, help="Tap matching pods in every namespace."
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print the pods it would tap and the objects it would create; change nothing.",
    ),
    *config_options,
]


def with_cluster_tap_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(cluster_tap_options):
        function = option(function)
    return function


@click.command("config")
@click.option("-r", "--regenerate", is_flag=True, help="Write the defaults to the config file.")
@with_config_options
def config_command(regenerate: bool, config_path: Path, assignments: tuple[str, ...]) -> None:
    """Print the effective config as YAML (file, then --set); -r writes the defaults."""
    if regenerate:
        write_defaults(config_path)
        click.echo(f"mizu: wrote the defaults to {config_path}", err=True)
    click.echo(Config.load(config_path, assignments).to_yaml(), nl=False)
