"""Kafka records: message sets (magic 0 and 1) and record batches (magic 2), decompressed.

Every count and size read from the wire is checked against the bytes at hand, decompression
stops at the budget's cap, and at most ``RecordBudget.records`` records per message are decoded
in full: the rest are only counted (a batch header carries its record count).
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable
from typing import Any, Final

import zstandard

COMPRESSION_NAMES: Final = ("none", "gzip", "snappy", "lz4", "zstd")
XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
BATCH_HEADER_SIZE: Final = 61
"""baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8, crc uint32,
attributes int16, lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId
int64, producerEpoch int16, baseSequence int32, recordCount int32."""
LEGACY_HEADER: Final = struct.Struct(">qiIbb")
"""offset, messageSize, crc, magic, attributes."""
LOG_APPEND_TIME: Final = 0x08
TRANSACTIONAL: Final = 0x10
CONTROL: Final = 0x20


class RecordBudget:
    """Caps of one message: records decoded in full, bytes shown per key/value, decompressed
    bytes."""

    # Plain classes rather than dataclasses here and in the other compiled modules: the
    # __init__ a dataclass makes runs interpreted even in the compiled build.
    def __init__(
        self, records: int = 100, value_bytes: int = 4096, decompressed_bytes: int = 16 << 20
    ) -> None:
        self.records = records
        self.value_bytes = value_bytes
        self.decompressed_bytes = decompressed_bytes


class DecodedRecords:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.count = 0


def compression_name(codec: int) -> str:
    """The name of a batch's compression codec (its number when it has none)."""
    return COMPRESSION_NAMES[codec] if codec < len(COMPRESSION_NAMES) else str(codec)


class RecordError(Exception):
    """Records that cannot be decoded (bad magic, codec failure)."""


NON_TEXT_ASCII: Final = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
"""The ASCII octets that are not printable text (tab, line feed and carriage return are)."""
NOT_PRINTABLE_ASCII: Final = bytes(
    0 if octet in NON_TEXT_ASCII or octet >= 0x80 else octet for octet in range(256)
)
"""A translation table that turns every octet but printable ASCII text into 0 (which is one of
them): text is what has no 0 once translated."""


def render(data: bytes | None, cap: int) -> tuple[str | None, bool]:
    """Text when ``data`` is UTF-8 without control characters, else base64; cut to ``cap``
    bytes. Returns the shown string and whether it is base64."""
    if data is None:
        return None, False
    if len(data) > cap:
        return render_shown(data[:cap], True)
    return render_shown(data, False)


def render_shown(shown: bytes, cut: bool) -> tuple[str, bool]:
    """:func:`render` of the bytes kept of a key, value or header value, ``cut`` when they are
    only its first bytes."""
    # Most keys and values are printable ASCII: one pass in C over the octets tells (a table
    # translation, where deleting octets would first build its table for every call), and one
    # search in the result.
    if 0 not in shown.translate(NOT_PRINTABLE_ASCII):
        return shown.decode("ascii"), False
    if shown.isascii():
        return base64.b64encode(shown).decode("ascii"), True
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError as error:
        # A cap may cut a character in two: keep the text when that is the only problem.
        if cut and error.start >= len(shown) - 3:
            text = shown[: error.start].decode("utf-8")
        else:
            return base64.b64encode(shown).decode("ascii"), True
    if text.isprintable() or all(c.isprintable() or c in "\t\n\r" for c in text):
        return text, False
    return base64.b64encode(shown).decode("ascii"), True


def _record(
    offset: int,
    timestamp: int,
    key: bytes | None,
    key_size: int,
    value: bytes | None,
    value_size: int,
    cap: int,
) -> dict[str, Any]:
    """A record's entry but its headers: ``key`` and ``value`` are the bytes kept of them (at
    most ``cap``), with their sizes on the wire."""
    record: dict[str, Any] = {"offset": offset, "timestamp": timestamp}
    _show(record, "key", "keyEncoding", "keySize", key, key_size, cap)
    _show(record, "value", "valueEncoding", "valueSize", value, value_size, cap)
    return record


def _show(
    record: dict[str, Any],
    name: str,
    encoding_name: str,
    size_name: str,
    data: bytes | None,
    size: int,
    cap: int,
) -> None:
    """A key or value into ``record``: shown, with its encoding when base64 and its size when
    the cap cut it."""
    if data is None:
        record[name] = None
        return
    shown, is_base64 = render_shown(data, size > cap)
    record[name] = shown
    if is_base64:
        record[encoding_name] = "base64"
    if size > cap:
        record[size_name] = size


MAX_HEADER_NAMES: Final = 4096
"""Header names remembered, at most (all are forgotten when there are more)."""
_HEADER_NAMES: Final[dict[bytes, str]] = {}
"""Record header names as text, by their octets: producers send a few names in every record."""


def _header_name(octets: bytes | None) -> str:
    """A record header's name as text (a null name as "")."""
    if octets is None:
        return ""
    name = _HEADER_NAMES.get(octets)
    if name is None:
        if len(_HEADER_NAMES) >= MAX_HEADER_NAMES:
            _HEADER_NAMES.clear()
        name = _HEADER_NAMES[octets] = octets.decode("utf-8", "replace")
    return name


def _add_header(headers: dict[str, Any], name: str, shown: str | None) -> None:
    """Add a header's shown value under a name already there: a list of them."""
    previous = headers[name]
    if isinstance(previous, list):
        previous.append(shown)
    else:
        headers[name] = [previous, shown]


def _capped(read: Callable[[int], bytes], budget: RecordBudget) -> bytes:
    output = read(budget.decompressed_bytes)
    budget.decompressed_bytes -= len(output)
    return output


def _snappy(data: bytes, limit: int) -> bytes:
    # The snappy and lz4 libraries load with the first batch that needs them: a run without
    # one pays nothing for them at start-up (zstandard is the HTTP plugin's too).
    import cramjam

    if data.startswith(XERIAL_MAGIC):
        # The Java client's framing: 16-byte header, then (int32 length, raw block) pairs.
        position = 16
        blocks: list[bytes] = []
        total = 0
        while position + 4 <= len(data) and total < limit:
            (length,) = struct.unpack_from(">i", data, position)
            block = data[position + 4 : position + 4 + length]
            position += 4 + length
            blocks.append(_snappy(block, limit - total))
            total += len(blocks[-1])
        return b"".join(blocks)[:limit]
    if cramjam.snappy.decompress_raw_len(data) > limit:
        raise RecordError("snappy block larger than the decompression cap")
    return bytes(cramjam.snappy.decompress_raw(data))


def _lz4(data: bytes, limit: int) -> bytes:
    import lz4.frame

    return lz4.frame.LZ4FrameDecompressor().decompress(data, limit)


def _zstd(data: bytes, limit: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = reader.read(limit - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def decompress(codec: int, data: bytes, budget: RecordBudget) -> bytes:
    """Decompress one batch (or wrapper message) body, at most the budget's bytes."""
    try:
        if codec == 1:
            return _capped(lambda limit: zlib.decompressobj(47).decompress(data, limit), budget)
        if codec == 2:
            return _capped(lambda limit: _snappy(data, limit), budget)
        if codec == 3:
            return _capped(lambda limit: _lz4(data, limit), budget)
        if codec == 4:
            return _capped(lambda limit: _zstd(data, limit), budget)
    except (zlib.error, RuntimeError, ValueError, zstandard.ZstdError) as error:
        raise RecordError(f"{COMPRESSION_NAMES[codec]}: {error}") from error
    raise RecordError(f"unknown compression codec {codec}")


def _varint(data: bytes, position: int, limit: int) -> tuple[int, int]:
    """A zigzag varint at ``position`` and the position after it; a run past ``limit`` raises
    IndexError."""
    if position >= limit:
        raise IndexError
    byte = data[position]
    if byte < 0x80:  # most lengths and deltas of small records: one octet
        return (byte >> 1) ^ -(byte & 1), position + 1
    value = byte & 0x7F
    shift = 7
    while True:
        position += 1
        if position >= limit:
            raise IndexError
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value >> 1) ^ -(value & 1), position + 1
        shift += 7
        if shift > 63:
            raise RecordError("varint longer than 10 bytes")


def _blob(data: bytes, position: int, limit: int, cap: int) -> tuple[bytes | None, int, int]:
    """A varint-length byte string (null when the length is negative): its first ``cap``
    bytes, its length and the position after it."""
    if position < limit and data[position] < 0x80:  # a length under 64: one octet
        byte = data[position]
        length = (byte >> 1) ^ -(byte & 1)
        position += 1
    else:
        length, position = _varint(data, position, limit)
    if length < 0:
        return None, 0, position
    end = position + length
    if end > limit:
        raise IndexError
    return data[position : position + min(length, cap)], length, end


def _batch_records(
    data: bytes,
    position: int,
    limit: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    log_append_time: int | None,
    budget: RecordBudget,
    out: list[dict[str, Any]],
) -> None:
    """The records of a batch whose body (uncompressed) is ``data[position:limit]``, up to the
    budget's count."""
    start = position
    cap = budget.value_bytes
    # Most varints of a record (deltas, header counts, lengths of small keys and values) are
    # one octet: those are read in line, longer ones by _varint.
    try:
        for _ in range(min(count, max(budget.records, 0))):
            length, position = _varint(data, position, limit)
            end = position + length
            position += 1  # the attributes octet, unused by the format so far
            if position < limit and data[position] < 0x80:
                byte = data[position]
                timestamp_delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                timestamp_delta, position = _varint(data, position, limit)
            if position < limit and data[position] < 0x80:
                byte = data[position]
                offset_delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                offset_delta, position = _varint(data, position, limit)
            key, key_size, position = _blob(data, position, limit, cap)
            value, value_size, position = _blob(data, position, limit, cap)
            if position < limit and data[position] < 0x80:
                byte = data[position]
                header_count = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                header_count, position = _varint(data, position, limit)
            timestamp = (
                log_append_time if log_append_time is not None else base_timestamp + timestamp_delta
            )
            record = _record(
                base_offset + offset_delta, timestamp, key, key_size, value, value_size, cap
            )
            headers: dict[str, Any] = {}
            binary: list[str] | None = None
            for _ in range(header_count):
                name, _name_size, position = _blob(data, position, limit, limit)
                header_value, header_size, position = _blob(data, position, limit, cap)
                header_name = _header_name(name)
                shown: str | None = None
                if header_value is not None:
                    shown, is_base64 = render_shown(header_value, header_size > cap)
                    if is_base64:
                        if binary is None:
                            binary = []
                        binary.append(header_name)
                if header_name in headers:
                    _add_header(headers, header_name, shown)
                else:
                    headers[header_name] = shown
            record["headers"] = headers
            if binary:
                record["base64Headers"] = binary
            out.append(record)
            position = end
            budget.records -= 1
            if end < start:
                return  # a negative length pointing before the batch: nothing more to read
    except IndexError:
        return  # a body cut by the decompression cap: keep the records read so far


def _int8_at(data: bytes, position: int) -> int:
    value = data[position]
    return value - 0x100 if value >= 0x80 else value


def _int16_at(data: bytes, position: int) -> int:
    value = data[position] << 8 | data[position + 1]
    return value - 0x10000 if value >= 0x8000 else value


def _uint32_at(data: bytes, position: int) -> int:
    return (
        data[position] << 24
        | data[position + 1] << 16
        | data[position + 2] << 8
        | data[position + 3]
    )


def int32_at(data: bytes, position: int) -> int:
    """The big-endian int32 at ``position``, which the caller knows is within ``data``."""
    value = _uint32_at(data, position)
    return value - 0x100000000 if value >= 0x80000000 else value


def _int64_at(data: bytes, position: int) -> int:
    # The sign goes on the high half first: a small negative (a producer id of -1) then never
    # passes through an unsigned value too large for the compiled build's short ints.
    return int32_at(data, position) << 32 | _uint32_at(data, position + 4)


MAX_BATCH_SUMMARIES: Final = 4096
"""Batch summaries remembered, at most (all are forgotten when there are more)."""
_BATCH_SUMMARIES: Final[dict[tuple[int, int, int, int], dict[str, Any]]] = {}
"""A batch's summary by what a producer sends the same in every batch (magic, attributes,
producer id and epoch), with the fields that change from batch to batch left at 0."""


def _batch_summary(
    magic: int, attributes: int, producer_id: int, producer_epoch: int
) -> dict[str, Any]:
    """A batch's summary, in its order, for its caller to fill in the offset, record count and
    sequence: copied from the one remembered for the same producer and flags, which is
    cheaper than building its ten fields for every batch."""
    key = (magic, attributes, producer_id, producer_epoch)
    summary = _BATCH_SUMMARIES.get(key)
    if summary is None:
        if len(_BATCH_SUMMARIES) >= MAX_BATCH_SUMMARIES:
            _BATCH_SUMMARIES.clear()
        summary = _BATCH_SUMMARIES[key] = {
            "baseOffset": 0,
            "magic": magic,
            "compression": compression_name(attributes & 0x07),
            "recordCount": 0,
            "producerId": producer_id,
            "producerEpoch": producer_epoch,
            "baseSequence": 0,
            "isTransactional": bool(attributes & TRANSACTIONAL),
            "isControl": bool(attributes & CONTROL),
            "timestampType": "LogAppendTime" if attributes & LOG_APPEND_TIME else "CreateTime",
        }
    return summary.copy()


def _record_batch(
    data: bytes, start: int, end: int, budget: RecordBudget, decoded: DecodedRecords
) -> dict[str, Any]:
    """Decode the record batch at ``data[start:end]`` into ``decoded``; returns its header's
    summary. The records beyond the budget are counted from the header, not read."""
    # Read by offsets, as ints the compiled build keeps native: an unpacked struct would make
    # thirteen Python ints (and their tuple) for every batch, some of them never used.
    base_offset = _int64_at(data, start)
    magic = _int8_at(data, start + 16)
    attributes = _int16_at(data, start + 21)
    producer_id = _int64_at(data, start + 43)
    producer_epoch = _int16_at(data, start + 51)
    base_sequence = int32_at(data, start + 53)
    count = int32_at(data, start + 57)
    codec = attributes & 0x07
    batch = _batch_summary(magic, attributes, producer_id, producer_epoch)
    batch["baseOffset"] = base_offset
    batch["recordCount"] = count
    batch["baseSequence"] = base_sequence
    records: list[dict[str, Any]] = []
    if budget.records > 0 and count > 0:
        base_timestamp = _int64_at(data, start + 27)
        # The broker's append time, in maxTimestamp, stands for every record's when it is set.
        log_append = _int64_at(data, start + 35) if attributes & LOG_APPEND_TIME else None
        body, body_start, body_end = data, start + BATCH_HEADER_SIZE, end
        if codec:
            body = decompress(codec, data[body_start:end], budget)
            body_start, body_end = 0, len(body)
        _batch_records(
            body,
            body_start,
            body_end,
            count,
            base_offset,
            base_timestamp,
            log_append,
            budget,
            records,
        )
    # Added once the batch decoded: one that fails adds nothing (decode_records says why).
    decoded.batches.append(batch)
    decoded.records += records
    decoded.count += max(count, 0)
    return batch


def _legacy_messages(
    data: bytes, budget: RecordBudget, decoded: DecodedRecords, nested: bool
) -> None:
    """A magic 0/1 message set; a compressed wrapper holds an inner message set."""
    position = 0
    while position + LEGACY_HEADER.size <= len(data):
        offset, size, _crc, magic, attributes = LEGACY_HEADER.unpack_from(data, position)
        end = position + 12 + size
        if size < 6 or end > len(data):
            return  # the trailing partial message brokers may send
        cursor = position + LEGACY_HEADER.size
        timestamp = -1
        if magic == 1:
            (timestamp,) = struct.unpack_from(">q", data, cursor)
            cursor += 8
        key, cursor = _legacy_blob(data, cursor, end)
        value, cursor = _legacy_blob(data, cursor, end)
        codec = attributes & 0x07
        position = end
        if codec and not nested:
            decoded.batches.append(
                {"baseOffset": offset, "magic": magic, "compression": compression_name(codec)}
            )
            inner = DecodedRecords()
            if budget.records > 0 and value is not None:
                _legacy_messages(decompress(codec, value, budget), budget, inner, nested=True)
            _rebase(inner.records, offset, magic, timestamp if attributes & 0x08 else None)
            decoded.records.extend(inner.records)
            decoded.count += max(inner.count, 1)
            continue
        if not nested:
            decoded.batches.append({"baseOffset": offset, "magic": magic, "compression": "none"})
        decoded.count += 1
        if budget.records > 0:
            cap = budget.value_bytes
            record = _record(offset, timestamp, *_kept(key, cap), *_kept(value, cap), cap)
            record["headers"] = {}
            decoded.records.append(record)
            budget.records -= 1


def _kept(data: bytes | None, cap: int) -> tuple[bytes | None, int]:
    """The bytes of a key or value a record shows, and its size."""
    return (None, 0) if data is None else (data[:cap], len(data))


def _legacy_blob(data: bytes, position: int, end: int) -> tuple[bytes | None, int]:
    if position + 4 > end:
        raise RecordError("message shorter than its key and value")
    (length,) = struct.unpack_from(">i", data, position)
    position += 4
    if length < 0:
        return None, position
    if position + length > end:
        raise RecordError("message key or value runs past the message")
    return data[position : position + length], position + length


def _rebase(records: list[dict[str, Any]], wrapper: int, magic: int, append: int | None) -> None:
    """Magic 1 inner messages carry offsets relative to the wrapper, which carries the last
    (a producer may leave the wrapper at 0: the relative offsets are then the offsets)."""
    if magic == 1 and records and wrapper >= records[-1]["offset"]:
        last = records[-1]["offset"]
        for record in records:
            record["offset"] = wrapper - last + record["offset"]
    if append is not None:
        for record in records:
            record["timestamp"] = append


def decode_records(
    data: bytes, budget: RecordBudget, start: int = 0, end: int | None = None
) -> DecodedRecords:
    """The records of one partition's ``records`` field, ``data[start:end]``. The records of a
    trailing partial batch (a fetch response cut at its size limit, or a message cut by the
    capture cap) are not decoded; a record batch's header still counts them."""
    if end is None:
        end = len(data)
    decoded = DecodedRecords()
    position = start
    try:
        while position + 17 <= end:
            length = int32_at(data, position + 8)
            batch_end = position + 12 + length
            magic = data[position + 16]
            if length < 0 or batch_end > end:
                if magic == 2 and position + BATCH_HEADER_SIZE <= end:
                    # Cut by the capture cap: the header still tells what the batch held.
                    header = RecordBudget(records=0)
                    _record_batch(data, position, position, header, decoded)["partial"] = True
                break
            if magic == 2:
                if length < BATCH_HEADER_SIZE - 12:
                    raise RecordError(f"record batch of {length} bytes")
                _record_batch(data, position, batch_end, budget, decoded)
            elif magic in (0, 1):
                _legacy_messages(data[position:batch_end], budget, decoded, nested=False)
            else:
                raise RecordError(f"unknown record magic {magic}")
            position = batch_end
    except (RecordError, struct.error) as error:
        decoded.batches.append({"decodeError": str(error)})
    return decoded
