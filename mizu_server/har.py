"""HTTP entries (docs/entries.md) as a HAR 1.2 log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mizu_core import __version__


def name_values(fields: Any) -> list[dict[str, str]]:
    """Mizu's ``{name: value | [values]}`` objects as HAR's ``[{name, value}]`` arrays."""
    if isinstance(fields, list):
        return [
            {"name": str(item.get("name", "")), "value": str(item.get("value", ""))}
            for item in fields
            if isinstance(item, Mapping)
        ]
    if not isinstance(fields, Mapping):
        return []
    pairs = []
    for name, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.append({"name": str(name), "value": "" if one is None else str(one)})
    return pairs


def _int(value: Any, default: int = -1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _version(message: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    version = message.get("httpVersion")
    if isinstance(version, str) and version:
        return version
    return f"HTTP/{entry['protocol'].get('version') or '1.1'}"


def har_entry(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """One HAR entry; None for an entry whose request was not captured."""
    request = entry.get("request")
    if not isinstance(request, Mapping):
        return None
    response = entry.get("response") if isinstance(entry.get("response"), Mapping) else None
    har_request: dict[str, Any] = {
        "method": str(request.get("method", "")),
        "url": str(request.get("url") or request.get("path") or ""),
        "httpVersion": _version(request, entry),
        "cookies": name_values(request.get("cookies")),
        "headers": name_values(request.get("headers")),
        "queryString": name_values(request.get("queryString")),
        "headersSize": _int(request.get("headersSize")),
        "bodySize": _int(request.get("bodySize")),
    }
    post = request.get("postData")
    if isinstance(post, Mapping):
        har_request["postData"] = {
            "mimeType": str(post.get("mimeType", "")),
            "text": str(post.get("text", "")),
            "params": name_values(post.get("params")),
        }
        if post.get("encoding"):
            har_request["postData"]["_encoding"] = post["encoding"]
    if response is not None:
        content = response.get("content") if isinstance(response.get("content"), Mapping) else {}
        har_content: dict[str, Any] = {
            "size": _int(content.get("size"), 0),
            "mimeType": str(content.get("mimeType", "")),
        }
        if content.get("text") is not None:
            har_content["text"] = str(content["text"])
        if content.get("encoding"):
            har_content["encoding"] = str(content["encoding"])
        status = response.get("status")
        har_response = {
            "status": _int(status, 0),
            "statusText": str(response.get("statusText", "")),
            "httpVersion": _version(response, entry),
            "cookies": name_values(response.get("cookies")),
            "headers": name_values(response.get("headers")),
            "content": har_content,
            "redirectURL": str(_header(response.get("headers"), "location") or ""),
            "headersSize": _int(response.get("headersSize")),
            "bodySize": _int(response.get("bodySize")),
        }
    else:  # HAR needs a response: what browsers write for a request that got none
        har_response = {
            "status": 0,
            "statusText": "",
            "httpVersion": har_request["httpVersion"],
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": "no response captured",
        }
    elapsed = float(entry.get("elapsedTime") or 0.0)
    return {
        "startedDateTime": entry["startTime"],
        "time": elapsed,
        "request": har_request,
        "response": har_response,
        "cache": {},
        "timings": {"send": 0, "wait": elapsed, "receive": 0},
        "serverIPAddress": str(entry["dst"].get("ip", "")),
        "connection": str(entry["src"].get("port", "")),
        "_mizuId": entry["id"],
    }


def _header(headers: Any, name: str) -> Any:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return value[0] if isinstance(value, list) and value else value
    return None


def har_log(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    har_entries = [
        converted
        for entry in entries
        if entry.get("protocol", {}).get("name") == "http"
        and (converted := har_entry(entry)) is not None
    ]
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "mizu", "version": __version__},
            "pages": [],
            "entries": har_entries,
        }
    }
