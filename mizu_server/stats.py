"""Traffic over time: requests per second, error rate and latency percentiles, per protocol,
per service or per endpoint, as time series (``GET /stats``).

Computed when asked from the stored entries the filter matches within a window
(:meth:`~mizu_server.store.SqliteStore.window`), in buckets aligned to multiples of their width
so that they stay put as the window moves. Errors are the entries' ``error`` (their plugin's
word); latencies are those of answered entries (a message with no reply has none); percentiles
are nearest-rank over every latency of a bucket, exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mizu_core.entry import query_literal
from mizu_server.oas import path_template, template_text
from mizu_server.servicemap import (
    Workload,
    latency_percentiles,
    role_query,
    server_workload,
)

COLUMNS = (
    "timestamp",
    "from_server",
    "src_name",
    "src_ip",
    "src_port",
    "dst_name",
    "dst_ip",
    "dst_port",
    "macro",
    "method",
    "path",
    "error",
    "elapsed",
    "response_size",
)
"""The store columns the statistics are made of, in the order :func:`build` reads them."""
GROUPINGS = ("protocol", "service", "endpoint")
MAX_SERIES = 8
"""Groups drawn as series of their own, busiest first; the rest are summed as "other"."""
BUCKET_WIDTHS_MS = tuple(
    seconds * 1000
    for seconds in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200)
)
"""Bucket widths, round to read on a time axis; beyond the last, whole days."""


def bucket_width(span_ms: int, buckets: int) -> int:
    """The smallest round width that covers ``span_ms`` in at most ``buckets`` buckets."""
    for width in BUCKET_WIDTHS_MS:
        if span_ms <= width * buckets:
            return width
    day = 86_400_000
    return -(-span_ms // (buckets * day)) * day


@dataclass(slots=True)
class _Series:
    key: str
    label: str
    query: str
    buckets: int
    counts: list[int] = field(init=False)
    errors: list[int] = field(init=False)
    latencies: list[list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = [0] * self.buckets
        self.errors = [0] * self.buckets
        self.latencies = [[] for _ in range(self.buckets)]

    def add(self, index: int, error: bool, latency: float | None) -> None:
        self.counts[index] += 1
        self.errors[index] += error
        if latency is not None:
            self.latencies[index].append(latency)

    def absorb(self, other: _Series) -> None:
        for index in range(self.buckets):
            self.counts[index] += other.counts[index]
            self.errors[index] += other.errors[index]
            self.latencies[index] += other.latencies[index]

    def as_json(self, width_ms: int, span_ms: int) -> dict[str, Any]:
        total = sum(self.counts)
        errors = sum(self.errors)
        every = [latency for bucket in self.latencies for latency in bucket]
        points = [latency_percentiles(list(bucket)) for bucket in self.latencies]
        return {
            "key": self.key,
            "label": self.label,
            "query": self.query,
            "count": total,
            "errors": errors,
            "rate": round(total * 1000 / span_ms, 4),
            "errorRate": round(errors / total, 4) if total else 0.0,
            "latency": latency_percentiles(every),
            "counts": self.counts,
            "errorCounts": self.errors,
            "rates": [round(count * 1000 / width_ms, 4) for count in self.counts],
            "errorRates": [
                round(error / count, 4) if count else None
                for count, error in zip(self.counts, self.errors, strict=True)
            ],
            **{
                f"p{rank}": [point[f"p{rank}"] if point else None for point in points]
                for rank in (50, 90, 99)
            },
        }


def _server(row: Sequence[Any]) -> Workload:
    if row[1] == 1:  # the server sent the message: it is the source
        return server_workload(row[2], row[3], row[4])
    return server_workload(row[5], row[6], row[7])


def path_pattern(template: str) -> str:
    """A filter regex matching the paths of ``template`` (``/orders/{orderId}``)."""
    parts = re.split(r"\{[^}]*\}", template)
    return "^" + "[^/]+".join(re.escape(part) for part in parts) + "$"


class _Grouping:
    """Each row's group: its key, label and filter."""

    def __init__(self, by: str, protocols: Mapping[str, Mapping[str, Any]]) -> None:
        self.by = by
        self.protocols = protocols
        self.known: dict[Any, tuple[str, str, str]] = {}
        self.templates: dict[str, str | None] = {}

    def group(self, row: Sequence[Any]) -> tuple[str, str, str]:
        macro = str(row[8] or "")
        if self.by == "protocol":
            key: Any = macro
        else:
            key = (row[1] == 1, *(row[2:5] if row[1] == 1 else row[5:8]), macro)
            if self.by == "endpoint":
                key += (row[9], self._template(row[10]))
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self._describe(row, macro)
        return found

    def _template(self, path: Any) -> str | None:
        """The path's template (``/orders/{orderId}``), the path itself when it has none."""
        if not isinstance(path, str) or not path:
            return None
        template = self.templates.get(path, "")
        if template == "":
            shape = path_template(path)
            template = self.templates[path] = template_text(shape) if shape else path
        return template

    def _describe(self, row: Sequence[Any], macro: str) -> tuple[str, str, str]:
        protocol_term = f"protocol.macro == {query_literal(macro)}"
        abbr = str(self.protocols.get(macro, {}).get("abbr") or macro)
        if self.by == "protocol":
            return macro, abbr, protocol_term
        server = _server(row)
        if self.by == "service":
            return (
                f"{server.id} {macro}",
                f"{abbr} · {server.id}",
                (f"{protocol_term} and {role_query(None, server)}"),
            )
        method = row[9] if isinstance(row[9], str) else ""
        template = self._template(row[10]) or ""
        terms = [protocol_term, role_query(None, server)]
        if method:
            terms.append(f"request.method == {query_literal(method)}")
        if template and template != row[10] and '"' not in template:
            terms.append(f'request.path == r"{path_pattern(template)}"')
        elif template:
            terms.append(f"request.path == {query_literal(template)}")
        label = " ".join(part for part in (method, template) if part) or abbr
        return f"{server.id} {abbr} {label}", f"{label} · {server.id}", " and ".join(terms)


def build(
    rows: Iterable[Sequence[Any]],
    since_ms: int,
    until_ms: int,
    by: str,
    buckets: int,
    protocols: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The series of store ``rows`` of :data:`COLUMNS` between ``since_ms`` and ``until_ms``,
    grouped ``by`` protocol, service or endpoint."""
    width = bucket_width(max(until_ms - since_ms, 1), buckets)
    start = since_ms // width * width
    count = (until_ms - start) // width + 1
    grouping = _Grouping(by, protocols)
    groups: dict[str, _Series] = {}
    everything = _Series("", "all", "", count)
    for row in rows:
        timestamp = row[0]
        if not isinstance(timestamp, int) or not start <= timestamp <= until_ms:
            continue
        index = (timestamp - start) // width
        key, label, query = grouping.group(row)
        series = groups.get(key)
        if series is None:
            series = groups[key] = _Series(key, label, query, count)
        error = row[11] == 1
        answered = isinstance(row[13], int) and row[13] > 0 and isinstance(row[12], int | float)
        latency = float(row[12]) if answered else None
        series.add(index, error, latency)
        everything.add(index, error, latency)
    ranked = sorted(groups.values(), key=lambda series: (-sum(series.counts), series.key))
    shown = ranked[:MAX_SERIES]
    if len(ranked) > MAX_SERIES:
        other = _Series("(other)", f"{len(ranked) - MAX_SERIES} more", "", count)
        for series in ranked[MAX_SERIES:]:
            other.absorb(series)
        shown.append(other)
    span = until_ms - start + 1
    return {
        "by": by,
        "bucketMs": width,
        "buckets": [start + index * width for index in range(count)],
        "all": everything.as_json(width, span),
        "series": [series.as_json(width, span) for series in shown],
        "groups": len(groups),
    }
