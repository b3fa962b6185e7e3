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
from dataclasses import dataclass, field
from typing import Any

import cramjam
import lz4.frame
import zstandard

COMPRESSION_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")
XERIAL_MAGIC = b"\x82SNAPPY\x00"
BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
"""baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount."""
INT32 = struct.Struct(">i")
LEGACY_HEADER = struct.Struct(">qiIbb")
"""offset, messageSize, crc, magic, attributes."""
LOG_APPEND_TIME = 0x08
TRANSACTIONAL = 0x10
CONTROL = 0x20


@dataclass(slots=True)
class RecordBudget:
    """Caps of one message: records decoded in full, bytes shown per key/value, decompressed
    bytes."""

    records: int = 100
    value_bytes: int = 4096
    decompressed_bytes: int = 16 << 20


@dataclass(slots=True)
class DecodedRecords:
    records: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0


class RecordError(Exception):
    """Records that cannot be decoded (bad magic, codec failure)."""


NON_TEXT_ASCII = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
"""The ASCII octets that are not printable text (tab, line feed and carriage return are)."""


def render(data: bytes | None, cap: int) -> tuple[str | None, bool]:
    """Text when ``data`` is UTF-8 without control characters, else base64; cut to ``cap``
    bytes. Returns the shown string and whether it is base64."""
    if data is None:
        return None, False
    shown = data[:cap] if len(data) > cap else data
    if shown.isascii():
        # Most keys and values: the printable test is then one pass in C over the octets.
        if len(shown.translate(None, NON_TEXT_ASCII)) == len(shown):
            return shown.decode("ascii"), False
        return base64.b64encode(shown).decode("ascii"), True
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError as error:
        # A cap may cut a character in two: keep the text when that is the only problem.
        if len(data) > cap and error.start >= len(shown) - 3:
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
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
    cap: int,
) -> dict[str, Any]:
    record: dict[str, Any] = {"offset": offset, "timestamp": timestamp}
    shown, is_base64 = render(key, cap)
    record["key"] = shown
    if is_base64:
        record["keyEncoding"] = "base64"
    if key is not None and len(key) > cap:
        record["keySize"] = len(key)
    shown, is_base64 = render(value, cap)
    record["value"] = shown
    if is_base64:
        record["valueEncoding"] = "base64"
    if value is not None and len(value) > cap:
        record["valueSize"] = len(value)
    shown_headers: dict[str, Any] = {}
    binary: list[str] = []
    for name, data in headers:
        shown, is_base64 = render(data, cap)
        if is_base64:
            binary.append(name)
        previous = shown_headers.get(name)
        if name not in shown_headers:
            shown_headers[name] = shown
        elif isinstance(previous, list):
            previous.append(shown)
        else:
            shown_headers[name] = [previous, shown]
    record["headers"] = shown_headers
    if binary:
        record["base64Headers"] = binary
    return record


def _capped(read: Callable[[int], bytes], budget: RecordBudget) -> bytes:
    output = read(budget.decompressed_bytes)
    budget.decompressed_bytes -= len(output)
    return output


def _snappy(data: bytes, limit: int) -> bytes:
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
            return _capped(
                lambda limit: lz4.frame.LZ4FrameDecompressor().decompress(data, limit), budget
            )
        if codec == 4:
            return _capped(lambda limit: _zstd(data, limit), budget)
    except (zlib.error, RuntimeError, ValueError, zstandard.ZstdError) as error:
        raise RecordError(f"{COMPRESSION_NAMES[codec]}: {error}") from error
    raise RecordError(f"unknown compression codec {codec}")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """A zigzag varint at ``position`` and the position after it; a run past the end of
    ``data`` raises IndexError."""
    byte = data[position]
    if byte < 0x80:  # most lengths and deltas of small records: one octet
        return (byte >> 1) ^ -(byte & 1), position + 1
    second = data[position + 1]
    if second < 0x80:  # the length of a record or value of 64 to 8191 octets
        value = (byte & 0x7F) | second << 7
        return (value >> 1) ^ -(value & 1), position + 2
    value = byte & 0x7F | (second & 0x7F) << 7
    position += 1
    shift = 14
    while True:
        position += 1
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value >> 1) ^ -(value & 1), position + 1
        shift += 7
        if shift > 63:
            raise RecordError("varint longer than 10 bytes")


def _blob(data: bytes, position: int) -> tuple[bytes | None, int]:
    """A varint-length byte string (null when the length is negative)."""
    byte = data[position]
    if byte < 0x80:
        length = (byte >> 1) ^ -(byte & 1)
        position += 1
    else:
        length, position = _varint(data, position)
    if length < 0:
        return None, position
    end = position + length
    if end > len(data):
        raise IndexError
    return data[position:end], end


def _batch_records(
    body: bytes,
    count: int,
    base_offset: int,
    base_timestamp: int,
    log_append_time: int | None,
    budget: RecordBudget,
    out: list[dict[str, Any]],
) -> None:
    position = 0
    cap = budget.value_bytes
    # Most varints of a record (deltas, lengths of keys and small values, header counts) are
    # one octet: those are read in line (a call each is most of the cost), longer ones by
    # _varint.
    try:
        for _ in range(min(count, max(budget.records, 0))):
            length, position = _varint(body, position)
            end = position + length
            # after the attributes octet, unused by the format so far
            byte = body[position + 1]
            if byte < 0x80:
                timestamp_delta = (byte >> 1) ^ -(byte & 1)
                position += 2
            else:
                timestamp_delta, position = _varint(body, position + 1)
            byte = body[position]
            if byte < 0x80:
                offset_delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                offset_delta, position = _varint(body, position)
            key, position = _blob(body, position)
            byte = body[position]
            if byte < 0x80:  # a value under 64 octets: its length in line
                value_length = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                value_length, position = _varint(body, position)
            if value_length < 0:
                value = None
            elif position + value_length > len(body):
                raise IndexError
            else:
                value = body[position : position + value_length]
                position += value_length
            byte = body[position]
            if byte < 0x80:
                header_count = (byte >> 1) ^ -(byte & 1)
                position += 1
            else:
                header_count, position = _varint(body, position)
            headers = []
            for _ in range(header_count):
                name, position = _blob(body, position)
                header_value, position = _blob(body, position)
                headers.append(((name or b"").decode("utf-8", "replace"), header_value))
            position = end
            timestamp = (
                log_append_time if log_append_time is not None else base_timestamp + timestamp_delta
            )
            out.append(_record(base_offset + offset_delta, timestamp, key, value, headers, cap))
            budget.records -= 1
    except IndexError:
        return  # a body cut by the decompression cap: keep the records read so far


def _record_batch(
    data: bytes, start: int, end: int, budget: RecordBudget, decoded: DecodedRecords
) -> dict[str, Any]:
    """Decode the record batch at ``start`` into ``decoded``; returns its header's summary."""
    (
        base_offset,
        _length,
        _leader_epoch,
        magic,
        _crc,
        attributes,
        _last_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    ) = BATCH_HEADER.unpack_from(data, start)
    codec = attributes & 0x07
    batch = {
        "baseOffset": base_offset,
        "magic": magic,
        "compression": COMPRESSION_NAMES[codec] if codec < len(COMPRESSION_NAMES) else str(codec),
        "recordCount": count,
        "producerId": producer_id,
        "producerEpoch": producer_epoch,
        "baseSequence": base_sequence,
        "isTransactional": bool(attributes & TRANSACTIONAL),
        "isControl": bool(attributes & CONTROL),
        "timestampType": "LogAppendTime" if attributes & LOG_APPEND_TIME else "CreateTime",
    }
    records: list[dict[str, Any]] = []
    if budget.records > 0 and count > 0:
        body = data[start + BATCH_HEADER.size : end]
        if codec:
            body = decompress(codec, body, budget)
        log_append = max_timestamp if attributes & LOG_APPEND_TIME else None
        _batch_records(body, count, base_offset, base_timestamp, log_append, budget, records)
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
                {"baseOffset": offset, "magic": magic, "compression": COMPRESSION_NAMES[codec]}
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
            decoded.records.append(_record(offset, timestamp, key, value, [], budget.value_bytes))
            budget.records -= 1


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


def decode_records(data: bytes, budget: RecordBudget) -> DecodedRecords:
    """The records of one partition's ``records`` field. The records of a trailing partial
    batch (a fetch response cut at its size limit, or a message cut by the capture cap) are
    not decoded; a record batch's header still counts them."""
    decoded = DecodedRecords()
    position = 0
    try:
        while position + 17 <= len(data):
            (length,) = INT32.unpack_from(data, position + 8)
            end = position + 12 + length
            magic = data[position + 16]
            if length < 0 or end > len(data):
                if magic == 2 and position + BATCH_HEADER.size <= len(data):
                    # Cut by the capture cap: the header still tells what the batch held.
                    header = RecordBudget(records=0)
                    _record_batch(data, position, position, header, decoded)["partial"] = True
                break
            if magic == 2:
                if length < BATCH_HEADER.size - 12:
                    raise RecordError(f"record batch of {length} bytes")
                _record_batch(data, position, end, budget, decoded)
            elif magic in (0, 1):
                _legacy_messages(data[position:end], budget, decoded, nested=False)
            else:
                raise RecordError(f"unknown record magic {magic}")
            position = end
    except (RecordError, struct.error) as error:
        decoded.batches.append({"decodeError": str(error)})
    return decoded
