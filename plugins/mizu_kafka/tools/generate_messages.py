"""Generate ``mizu_kafka/messages.py`` from Apache Kafka's JSON message definitions.

Usage: ``python tools/generate_messages.py [DIR]`` where ``DIR`` holds the upstream
``*Request.json`` / ``*Response.json`` files (Apache Kafka's
``clients/src/main/resources/common/message``; kafka-python ships a copy, used by default).
``--check`` compares instead of writing. The output is formatted with ``ruff format``.

Each struct of each message becomes a reader function: the struct's fields in wire order,
each under the versions that have it, read with :class:`mizu_kafka.codec.Reader` into the
struct's dict. Kafka 4 dropped the oldest versions of some APIs from ``validVersions`` but its
field definitions still describe them (``"versions": "0"`` fields remain), so every reader
starts at version 0: captures of older clients decode too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "mizu_kafka" / "messages.py"
COMMENTS = re.compile(r"(?m)^\s*//.*\n?")
LATEST = 0x7FFF
ERROR_CODE_SUFFIXES = ("errorCode", "ErrorCode")
SCALAR_READS = {
    "int8": "r.int8()",
    "int16": "r.int16()",
    "uint16": "r.uint16()",
    "int32": "r.int32()",
    "int64": "r.int64()",
    "float64": "r.float64()",
    "bool": "r.boolean()",
    "string": "r.string()",
    "bytes": "r.bytes_field()",
    "uuid": "r.uuid()",
}
"""How a value of each Kafka type is read."""


def kafka_python_directory() -> Path:
    import kafka.protocol.schemas.resources as resources

    return Path(resources.__file__).parent


def load(path: Path) -> dict[str, Any]:
    return json.loads(COMMENTS.sub("", path.read_text(encoding="utf-8")))


def version_range(text: str | None) -> tuple[int, int]:
    if not text or text == "none":
        return -1, -1
    if text.endswith("+"):
        return int(text[:-1]), LATEST
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def condition(low: int, high: int, name: str = "v") -> str | None:
    """The test of a version range, None when every version is in it."""
    if low <= 0 and high >= LATEST:
        return None
    if high >= LATEST:
        return f"{name} >= {low}"
    if low <= 0:
        return f"{name} <= {high}"
    if low == high:
        return f"{name} == {low}"
    return f"{low} <= {name} <= {high}"


@dataclass
class Struct:
    """A struct type of one message and the name of its reader."""

    function: str
    fields: list[dict[str, Any]]


class MessageWriter:
    """The reader functions of one message: its top-level struct and every nested one."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.prefix = "_" + snake(message["name"])
        self.common = {
            struct["name"]: struct["fields"] for struct in message.get("commonStructs", [])
        }
        self.structs: dict[str, Struct] = {}
        self.order: list[str] = []

    def functions(self) -> list[str]:
        self.struct(None, self.message["fields"])
        return [self.function(self.structs[name]) for name in self.order]

    def struct(self, type_name: str | None, fields: list[dict[str, Any]]) -> str:
        """The reader of a struct type, registered on first use."""
        key = type_name or ""
        if key not in self.structs:
            function = self.prefix + ("__" + snake(type_name) if type_name else "")
            self.structs[key] = Struct(function, fields)
            self.order.append(key)
        return self.structs[key].function

    def element(self, field: dict[str, Any]) -> tuple[str, str | None]:
        """The field's element type and, when that is a struct, its reader."""
        kind = field["type"]
        element = kind[2:] if kind.startswith("[]") else kind
        children = field.get("fields")
        if children is None and element[:1].isupper():
            children = self.common[element]
        if children is None:
            return element, None
        return element, self.struct(element, children)

    def function(self, struct: Struct) -> str:
        body: list[str] = []
        tagged: list[tuple[int, str | None, list[str]]] = []
        # Consecutive fields of the same versions go under one test.
        runs: list[tuple[str | None, list[str]]] = []
        for field in struct.fields:
            low, high = version_range(field["versions"])
            if low < 0:
                continue
            code = self.field(field)
            test = condition(low, high)
            if "tag" in field:
                tagged.append((field["tag"], test, code))
            elif runs and runs[-1][0] == test:
                runs[-1][1].extend(code)
            else:
                runs.append((test, code))
        for test, code in runs:
            body += [f"if {test}:", *indent(code)] if test else code
        body += self.tagged_section(tagged)
        uses_version = any(re.search(r"\bv\b", line) for line in body)
        header = [f"def {struct.function}(r: Reader, out: dict[str, Any]) -> None:"]
        if uses_version:
            header.append("    v = r.version")
        return "\n".join(header + indent(body))

    def tagged_section(self, tagged: list[tuple[int, str | None, list[str]]]) -> list[str]:
        if not tagged:
            return ["if r.flexible:", "    r.skip_tagged_fields()"]
        lines = [
            "if r.flexible:",
            "    for _ in range(r.tagged_field_count()):",
            "        tag, outer = r.enter_tagged_field()",
        ]
        for index, (tag, test, code) in enumerate(tagged):
            keyword = "if" if index == 0 else "elif"
            lines.append(f"        {keyword} tag == {tag}" + (f" and {test}:" if test else ":"))
            lines += indent(code, 3)
        lines.append("        r.leave_tagged_field(outer)")
        return lines

    def field(self, field: dict[str, Any]) -> list[str]:
        """Lines reading ``field`` into ``out``."""
        name = camel(field["name"])
        key = repr(name)
        local = snake(field["name"])
        kind = field["type"]
        element, reader = self.element(field)
        if kind.startswith("[]"):
            if reader is not None:
                loop = [
                    f"{local}_item: dict[str, Any] = {{}}",
                    f"{local}_list.append({local}_item)",
                    f"{reader}(r, {local}_item)",
                ]
            else:
                loop = [f"{local}_list.append({SCALAR_READS[element]})"]
            return [
                "count = r.count()",
                "if count < 0:",
                f"    out[{key}] = None",
                "else:",
                f"    {local}_list: list[Any] = []",
                f"    out[{key}] = {local}_list",
                "    for _ in range(count):",
                *indent(loop, 2),
            ]
        if reader is not None:
            fill = [
                f"{local}_struct: dict[str, Any] = {{}}",
                f"out[{key}] = {local}_struct",
                f"{reader}(r, {local}_struct)",
            ]
            nullable_low, nullable_high = version_range(field.get("nullableVersions"))
            if nullable_low < 0:
                return fill
            nullable = condition(nullable_low, nullable_high)
            test = f"{nullable} and r.null_struct()" if nullable else "r.null_struct()"
            return [f"if {test}:", f"    out[{key}] = None", "else:", *indent(fill)]
        if kind == "records":
            return [f"r.records(out, {key})"]
        if kind == "int16" and name.endswith(ERROR_CODE_SUFFIXES):
            return [f"out[{key}] = r.error_code_field()"]
        return [f"out[{key}] = {SCALAR_READS[kind]}"]


def indent(lines: list[str], levels: int = 1) -> list[str]:
    return [" " * 4 * levels + line for line in lines]


def api_names() -> dict[int, str]:
    from kafka.protocol.api_key import ApiKey

    return {int(key): key.name for key in ApiKey}


def error_names() -> dict[int, str]:
    import kafka.errors

    names: dict[int, str] = {}
    for value in vars(kafka.errors).values():
        if (
            isinstance(value, type)
            and issubclass(value, kafka.errors.BrokerResponseError)
            and isinstance(getattr(value, "errno", None), int)
        ):
            names.setdefault(value.errno, value.message)
    names[0] = "NONE"
    return dict(sorted(names.items()))


def digest(paths: list[Path]) -> str:
    """SHA-256 over the input files' names and contents, in name order."""
    hashed = hashlib.sha256()
    for path in paths:
        hashed.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hashed.hexdigest()


def kafka_release(max_versions: dict[int, int]) -> str:
    """The Apache Kafka release whose API versions the definitions have, by kafka-python's
    table of releases: the newest that agrees on the most APIs, and where it does not."""
    from kafka.protocol.api_key import ApiKey
    from kafka.protocol.broker_version_data import BROKER_API_VERSIONS

    def disagreements(table: dict[int, tuple[int, int]]) -> list[str]:
        return [
            f"{ApiKey(key).name} v{version} (there: v{table[key][1] if key in table else '-'})"
            for key, version in sorted(max_versions.items())
            if table.get(key, (0, -1))[1] != version
        ]

    release, table = min(
        BROKER_API_VERSIONS.items(),
        key=lambda item: (len(disagreements(item[1])), [-n for n in item[0]]),
    )
    name = "Apache Kafka " + ".".join(map(str, release))
    different = disagreements(table)
    return name if not different else f"{name}, but {', '.join(different)}"


def source_line(directory: Path, paths: list[Path], max_versions: dict[int, int]) -> str:
    if directory == kafka_python_directory():
        import kafka

        origin = f"kafka-python {kafka.__version__}'s copy (kafka/protocol/schemas/resources)"
    else:
        origin = f"the directory {directory.name}"
    return (
        f"Input: {origin}, {len(paths)} files,\nSHA-256 {digest(paths)}.\n"
        f"Their API versions are those of {kafka_release(max_versions)}."
    )


def generate(directory: Path) -> str:
    paths = sorted(directory.glob("*.json"))
    requests = {}
    responses = {}
    for path in paths:
        message = load(path)
        if message.get("apiKey") is None:
            continue
        table = requests if message["type"] == "request" else responses
        table[message["apiKey"]] = message
    keys = sorted(requests.keys() & responses.keys())
    max_versions = {key: version_range(requests[key]["validVersions"])[1] for key in keys}
    lines = [
        '"""Kafka request and response readers, per API key and version: generated code.',
        "",
        "Generated by ``tools/generate_messages.py`` from Apache Kafka's JSON message definitions",
        "(Apache-2.0). Regenerate rather than edit: a test checks that regenerating gives it.",
        *source_line(directory, paths, max_versions).splitlines(),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Final",
        "",
        "from mizu_kafka.codec import Reader",
        "from mizu_kafka.schema import ApiSchema",
        "",
        f"API_NAMES: Final[dict[int, str]] = {api_names()!r}",
        "",
        f"ERROR_NAMES: Final[dict[int, str]] = {error_names()!r}",
        "",
    ]
    entries = []
    for key in keys:
        request, response = requests[key], responses[key]
        request_flexible, _ = version_range(request.get("flexibleVersions"))
        response_flexible, _ = version_range(response.get("flexibleVersions"))
        for message in (request, response):
            for function in MessageWriter(message).functions():
                lines += ["", function, ""]
        entries.append(
            f"    {key}: ApiSchema({max_versions[key]}, "
            f"{request_flexible if request_flexible >= 0 else LATEST}, "
            f"{response_flexible if response_flexible >= 0 else LATEST}, "
            f"_{snake(request['name'])}, _{snake(response['name'])}),"
        )
    lines += ["", "APIS: Final[dict[int, ApiSchema]] = {", *entries, "}"]
    return "\n".join(lines) + "\n"


def formatted(source: str) -> str:
    """``source`` as ``ruff format`` leaves it (the project's formatting)."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--quiet", "--stdin-filename", str(OUTPUT), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, help="the *.json definitions")
    parser.add_argument("--check", action="store_true", help="fail when the file would change")
    args = parser.parse_args(argv)
    directory = args.directory.resolve() if args.directory else kafka_python_directory()
    source = formatted(generate(directory))
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != source:
            sys.exit(f"{OUTPUT} is not what {directory} generates: regenerate it")
        return
    OUTPUT.write_text(source, encoding="utf-8")


if __name__ == "__main__":
    main()
