"""Protobuf decoding of gRPC messages: without a schema, or by name from a descriptor set.

Schema-less (:func:`decode_message`) turns the bytes into a tree of fields keyed by number::

    {"field": 1, "wireType": "varint", "value": 150}
    {"field": 2, "wireType": "varint", "value": 18446744073709551615, "signed": -1}
    {"field": 3, "wireType": "fixed64", "value": 4609434218613702656, "double": 1.5}
    {"field": 4, "wireType": "fixed32", "value": 1069547520, "float": 1.5}
    {"field": 5, "wireType": "length-delimited", "value": [...nested fields...]}
    {"field": 6, "wireType": "length-delimited", "value": "text"}
    {"field": 7, "wireType": "length-delimited", "value": "AQID", "encoding": "base64",
     "packedVarints": [1, 2, 3]}
    {"field": 8, "wireType": "start-group", "value": [...fields up to the end-group...]}

- ``value`` is the unsigned reading of varints and fixed fields; ``signed`` is added when the
  top bit is set (a negative int32/int64/sfixed). ``float``/``double`` read fixed32/fixed64 as
  IEEE numbers (``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as in protobuf's JSON mapping; a
  float is given with the fewest digits that read back to the same float32).
- A length-delimited value is a list when it parses completely as a nested message, a string
  when it is printable UTF-8, otherwise base64 with ``"encoding": "base64"``. A printable
  string that starts with a printable character is kept as text even when it would also parse
  as a message (``"hi"`` is field 13 = 105): a message usually starts with the tag of field 1
  to 3, a byte below 0x20. Empty values are ``""``.
- Packed repeated scalars are indistinguishable from bytes and often from messages: a nested
  message wins when one parses (packed ``[8, 150]`` is the bytes of ``{1: 150}``); otherwise
  bytes that are a whole sequence of varints also get ``packedVarints``, read as int64.
  sint32/sint64 (zigzag) and packed fixed-width values are left to the reader.
- Malformed input raises :class:`ProtobufError` (a ``ValueError``) naming the offset; nested
  values that fail to parse simply stay text or bytes. Nesting stops at ``max_depth`` levels
  (deeper values stay text or bytes, deeper groups are an error) and a tree holds at most
  ``max_fields`` fields, so work and output are bounded by the input size.

By name (:func:`decode_named`) uses the official ``protobuf`` package and a descriptor pool
from a ``FileDescriptorSet`` (:func:`load_descriptor_set`, :func:`pool_from_descriptor_set`),
built with ``protoc --include_imports --descriptor_set_out=...`` or :func:`compile_protos`
(needs ``grpcio-tools``). :func:`method_types` maps a gRPC path to its message types.
"""

from __future__ import annotations

import base64
import math
import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from google.protobuf.descriptor_pool import DescriptorPool

# google.protobuf is imported by the schema functions only: it takes about 0.2 s to import,
# which every `mizu dissect` would pay while the schema-less decoder needs none of it.

__all__ = [
    "ProtobufError",
    "compile_protos",
    "decode_message",
    "decode_named",
    "load_descriptor_set",
    "method_types",
    "pool_from_descriptor_set",
]

Field = dict[str, Any]

# Final: the compiled build inlines them instead of looking each name up in the module's
# dictionary (ten times a field).
_VARINT: Final = 0
_FIXED64: Final = 1
_LENGTH_DELIMITED: Final = 2
_START_GROUP: Final = 3
_END_GROUP: Final = 4
_FIXED32: Final = 5
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1
_UINT64_LIMIT: Final = 1 << 64
# Tab, newline and carriage return are common in text but not str.isprintable().
_TEXT_WHITESPACE = str.maketrans("", "", "\t\n\r")
_PROTOC_TIMEOUT_SECONDS = 60


class ProtobufError(ValueError):
    """Bytes that are not a protobuf message, or a schema that cannot be used."""


def decode_message(data: bytes, max_depth: int = 8, max_fields: int = 10_000) -> list[Field]:
    """Decode a protobuf message without its schema into a tree of numbered fields.

    :param max_depth: levels of nested messages and groups decoded below the top level.
    :param max_fields: most fields in the whole tree.
    :raises ProtobufError: the bytes are not a complete message within those limits.
    """
    if not isinstance(data, bytes):  # a bytearray or memoryview: read from a copy of its bytes
        data = bytes(data)
    return _SchemaLessDecoder(data, max_depth, max_fields).top_level()


class _SchemaLessDecoder:
    """Reads one buffer by absolute offsets, so errors name where the input went wrong. Each
    field's object is built whole, in the order of its keys (no object merged into another)."""

    def __init__(self, data: bytes, max_depth: int, max_fields: int) -> None:
        self.data = data
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.fields_left = max_fields

    def top_level(self) -> list[Field]:
        fields, _ = self._fields(0, len(self.data), 0, 0)
        return fields

    def _fields(self, pos: int, end: int, depth: int, group: int) -> tuple[list[Field], int]:
        """Fields from ``pos`` to ``end``, or up to the end-group tag of ``group`` (0: none,
        field numbers start at 1)."""
        data = self.data
        fields: list[Field] = []
        while pos < end:
            tag_offset = pos
            tag, pos = _read_varint(data, pos, end)
            number = tag >> 3
            wire_type = tag & 7
            if not 1 <= number <= _MAX_FIELD_NUMBER:
                raise ProtobufError(f"invalid field number {number} at offset {tag_offset}")
            if wire_type == _END_GROUP:
                if number != group:
                    raise ProtobufError(f"unmatched end of group {number} at offset {tag_offset}")
                return fields, pos
            if wire_type > _FIXED32:
                raise ProtobufError(f"invalid wire type {wire_type} at offset {tag_offset}")
            if self.fields_left == 0:
                raise ProtobufError(f"more than {self.max_fields} fields")
            self.fields_left -= 1
            field: Field
            if wire_type == _LENGTH_DELIMITED:
                length, pos = _read_varint(data, pos, end)
                _need(pos, length, end)
                field = self._length_delimited(number, pos, pos + length, depth)
                pos += length
            elif wire_type == _VARINT:
                value, pos = _read_varint(data, pos, end)
                field = {"field": number, "wireType": "varint", "value": value}
                if value >> 63:
                    field["signed"] = value - _UINT64_LIMIT
            elif wire_type == _START_GROUP:
                if depth >= self.max_depth:
                    raise ProtobufError(
                        f"groups nested deeper than {self.max_depth} at offset {pos}"
                    )
                nested, pos = self._fields(pos, end, depth + 1, number)
                field = {"field": number, "wireType": "start-group", "value": nested}
            else:
                field = self._fixed(number, wire_type, pos, end)
                pos += 8 if wire_type == _FIXED64 else 4
            fields.append(field)
        if group:
            raise ProtobufError(f"group {group} is not closed")
        return fields, pos

    def _fixed(self, number: int, wire_type: int, pos: int, end: int) -> Field:
        size = 8 if wire_type == _FIXED64 else 4
        _need(pos, size, end)
        raw = self.data[pos : pos + size]
        value = int.from_bytes(raw, "little")
        name = "fixed64" if size == 8 else "fixed32"
        field: Field = {"field": number, "wireType": name, "value": value}
        _add_signed(field, value, size * 8)
        if size == 8:
            field["double"] = _json_float(struct.unpack("<d", raw)[0])
        else:
            field["float"] = _float32(raw)
        return field

    def _length_delimited(self, number: int, start: int, end: int, depth: int) -> Field:
        chunk = self.data[start:end]
        text = _printable_text(chunk)
        # a printable first octet keeps text as text (see the module's notes)
        if start < end and (text is None or self.data[start] < 0x20) and depth < self.max_depth:
            fields_left = self.fields_left
            try:
                nested, _ = self._fields(start, end, depth + 1, 0)
            except ProtobufError:
                self.fields_left = fields_left  # the failed guess leaves nothing in the tree
            else:
                return {"field": number, "wireType": "length-delimited", "value": nested}
        if text is not None:
            return {"field": number, "wireType": "length-delimited", "value": text}
        field: Field = {
            "field": number,
            "wireType": "length-delimited",
            "value": base64.b64encode(chunk).decode(),
            "encoding": "base64",
        }
        packed = _packed_varints(chunk)
        if packed is not None:
            field["packedVarints"] = packed
        return field


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos < end and data[pos] < 0x80:  # most tags and lengths take one octet
        return data[pos], pos + 1
    start = pos
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise ProtobufError(f"truncated varint at offset {start}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift == 70:
            raise ProtobufError(f"varint longer than 10 bytes at offset {start}")
    if value >= _UINT64_LIMIT:
        raise ProtobufError(f"varint above 64 bits at offset {start}")
    return value, pos


def _need(pos: int, size: int, end: int) -> None:
    if size > end - pos:
        raise ProtobufError(f"{size} bytes needed at offset {pos}, {end - pos} left")


def _add_signed(field: Field, value: int, bits: int) -> None:
    if value >> (bits - 1):
        field["signed"] = value - (1 << bits)


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _float32(raw: bytes) -> float | str:
    value = _json_float(struct.unpack("<f", raw)[0])
    if isinstance(value, str):
        return value
    # Nine significant digits always read back to the same float32; fewer usually do.
    for digits in range(1, 9):
        shorter = float(f"{value:.{digits}g}")
        try:
            if struct.pack("<f", shorter) == raw:
                return shorter
        except OverflowError:  # rounded up past the largest float32
            continue
    return value


def _printable_text(chunk: bytes) -> str | None:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.isprintable():  # no tab or line break either: nothing to strip
        return text
    return text if text.translate(_TEXT_WHITESPACE).isprintable() else None


def _packed_varints(chunk: bytes) -> list[int] | None:
    values: list[int] = []
    pos = 0
    try:
        while pos < len(chunk):
            value, pos = _read_varint(chunk, pos, len(chunk))
            values.append(value - _UINT64_LIMIT if value >> 63 else value)
    except ProtobufError:
        return None
    return values


def pool_from_descriptor_set(data: bytes) -> DescriptorPool:
    """A descriptor pool holding every file of a serialized ``FileDescriptorSet``.

    :raises ProtobufError: the set does not parse, lacks an imported file (build it with
        ``--include_imports``) or describes invalid types.
    """
    from google.protobuf import descriptor_pb2
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message import DecodeError

    file_set = descriptor_pb2.FileDescriptorSet()
    try:
        file_set.ParseFromString(data)
    except DecodeError as error:
        raise ProtobufError(f"not a FileDescriptorSet: {error}") from error
    files = {file.name: file for file in file_set.file}
    pool = DescriptorPool()
    added: set[str] = set()

    def add(name: str, importers: tuple[str, ...]) -> None:
        # The pool needs a file's imports before the file itself.
        if name in added:
            return
        if name in importers:
            raise ProtobufError(f"import cycle: {' -> '.join((*importers, name))}")
        if name not in files:
            raise ProtobufError(
                f"{importers[-1]} imports {name}, which the descriptor set lacks "
                "(build it with --include_imports)"
            )
        for dependency in files[name].dependency:
            add(dependency, (*importers, name))
        try:
            pool.Add(files[name])
        except (TypeError, ValueError) as error:
            raise ProtobufError(f"{name}: {error}") from error
        added.add(name)

    for name in files:
        add(name, ())
    return pool


def load_descriptor_set(path: str | os.PathLike[str]) -> DescriptorPool:
    """A descriptor pool from a ``FileDescriptorSet`` file (``protoc --descriptor_set_out``).

    :raises ProtobufError: as :func:`pool_from_descriptor_set`, or the file cannot be read.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ProtobufError(f"cannot read descriptor set: {error}") from error
    return pool_from_descriptor_set(data)


def compile_protos(
    proto_paths: Iterable[str | os.PathLike[str]],
    include_dirs: Iterable[str | os.PathLike[str]] = (),
) -> bytes:
    """Compile ``.proto`` files into a serialized ``FileDescriptorSet``, imports included.

    Runs ``grpc_tools.protoc`` in a subprocess, so its error messages can be reported. Imports
    resolve against ``include_dirs`` (each proto's own directory when none are given), then
    the well-known types shipped with grpcio-tools.

    :raises ProtobufError: grpcio-tools is not installed, or protoc rejected the files.
    """
    # Here rather than at the top: only compiling .proto files needs them, every run imports
    # this module.
    import importlib.resources
    import importlib.util
    import subprocess
    import tempfile

    if importlib.util.find_spec("grpc_tools") is None:
        raise ProtobufError("compiling .proto files needs grpcio-tools: pip install grpcio-tools")
    protos = [Path(proto) for proto in proto_paths]
    if not protos:
        raise ProtobufError("no .proto files to compile")
    includes = [Path(directory) for directory in include_dirs]
    if not includes:
        includes = list(dict.fromkeys(proto.parent for proto in protos))
    well_known_types = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="mizu-protoc-") as scratch:
        output = Path(scratch) / "descriptors.pb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"--proto_path={directory}" for directory in includes),
            f"--proto_path={well_known_types}",
            "--include_imports",
            f"--descriptor_set_out={output}",
            *(str(proto) for proto in protos),
        ]
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=_PROTOC_TIMEOUT_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ProtobufError(f"protoc did not run: {error}") from error
        if completed.returncode != 0:
            message = completed.stderr.strip() or f"exit status {completed.returncode}"
            raise ProtobufError(f"protoc failed: {message}")
        return output.read_bytes()


def method_types(pool: DescriptorPool, path: str) -> tuple[str, str]:
    """The full names of the request and response types of a gRPC path ``/pkg.Service/Method``.

    :raises ProtobufError: the path is malformed or the pool lacks the service or method.
    """
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise ProtobufError(f"not a gRPC path /package.Service/Method: {path!r}")
    _, service_name, method_name = parts
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError as error:
        raise ProtobufError(f"unknown gRPC service {service_name}") from error
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise ProtobufError(f"service {service_name} has no method {method_name}")
    return method.input_type.full_name, method.output_type.full_name


def decode_named(data: bytes, message_type: str, pool: DescriptorPool) -> dict[str, Any]:
    """Decode ``data`` as the message ``message_type`` (full name) into protobuf's JSON form.

    Field names are lowerCamelCase, 64-bit integers strings, enums names and bytes base64, as
    protobuf's JSON mapping has them; fields left at their default are omitted.

    :raises ProtobufError: the pool lacks the type, or the bytes are not such a message.
    """
    from google.protobuf import json_format, message_factory
    from google.protobuf.message import DecodeError

    try:
        descriptor = pool.FindMessageTypeByName(message_type.removeprefix("."))
    except KeyError as error:
        raise ProtobufError(f"unknown message type {message_type}") from error
    message = message_factory.GetMessageClass(descriptor)()
    try:
        message.ParseFromString(bytes(data))
        decoded: dict[str, Any] = json_format.MessageToDict(message, descriptor_pool=pool)
    except (DecodeError, json_format.Error, TypeError) as error:
        raise ProtobufError(f"not a {descriptor.full_name}: {error}") from error
    return decoded
