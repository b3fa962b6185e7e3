"""API rules: checks every HTTP entry against a rules file (``--traffic-validation-file``).

    rules:
      - name: orders-must-have-id
        type: json          # json | header | slo
        key: "$.id"         # JSONPath into the response body, or a header-name regex
        value: "^[0-9]+$"   # regex every value found must match (optional: presence only)
        service: "orders.*" # regex on the destination's name, host or ip:port (optional)
        path: "^/api/orders"  # regex on the request path (optional)
      - name: fast-catalogue
        type: slo
        service: "catalogue.*"
        response-time: 300  # ms, from the request's first byte to the response's last

The outcome goes into the entry as ``rules: {passed: [name], failed: [{name, reason}]}`` (a
rule whose service or path does not match the entry is in neither list). A bad file raises
:class:`RulesError` naming the rule and the field, before anything starts.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import yaml

from mizu_core.entry import NOT_JSON, Section, equals, parse_json, row, table
from mizu_core.model import Endpoint

RULE_TYPES = ("json", "header", "slo")
_FIELDS = {
    "json": {"name", "type", "key", "value", "service", "path"},
    "header": {"name", "type", "key", "value", "service", "path"},
    "slo": {"name", "type", "response-time", "service", "path"},
}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule and the field."""


class JsonPathError(ValueError):
    pass


_STEP = re.compile(
    r"\.(?P<name>[A-Za-z_$][\w$-]*)"
    r"|\.(?P<dot_star>\*)"
    r"|\[(?P<index>-?\d+)\]"
    r"|\[(?P<bracket_star>\*)\]"
    r"|\['(?P<single>(?:[^'\\]|\\.)*)'\]"
    r'|\["(?P<double>(?:[^"\\]|\\.)*)"\]'
)


@dataclass(frozen=True, slots=True)
class JsonPath:
    """The JSONPath subset rules use: ``$``, ``.name``, ``['name']``, ``[n]``, ``[*]``, ``.*``."""

    text: str
    steps: tuple[str | int | None, ...]
    """Member names, list indexes, and None for a wildcard."""

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        if not text.startswith("$"):
            raise JsonPathError("a JSONPath starts with $ (the body's root), e.g. $.id")
        steps: list[str | int | None] = []
        position = 1
        while position < len(text):
            match = _STEP.match(text, position)
            if match is None:
                raise JsonPathError(
                    f"cannot read {text[position:]!r} at offset {position}; steps are .name, "
                    "['name'], [n], [*] and .*"
                )
            kind = match.lastgroup
            if kind == "name":
                steps.append(match.group("name"))
            elif kind == "index":
                steps.append(int(match.group("index")))
            elif kind in ("single", "double"):
                steps.append(re.sub(r"\\(.)", r"\1", match.group(kind)))
            else:
                steps.append(None)
            position = match.end()
        return cls(text, tuple(steps))

    def find(self, document: Any) -> list[Any]:
        """Every value the path reaches in ``document`` (none when it leads nowhere)."""
        values = [document]
        for step in self.steps:
            reached: list[Any] = []
            for value in values:
                if step is None:
                    if isinstance(value, Mapping):
                        reached.extend(value.values())
                    elif isinstance(value, list):
                        reached.extend(value)
                elif isinstance(step, int):
                    if isinstance(value, list) and -len(value) <= step < len(value):
                        reached.append(value[step])
                elif isinstance(value, Mapping) and step in value:
                    reached.append(value[step])
            values = reached
        return values


class Subject:
    """One entry under check: what several rules look at, worked out once."""

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.entry = entry
        self.path = str((entry.get("request") or {}).get("path", ""))

    @cached_property
    def names(self) -> list[str]:
        return list(destination_names(self.entry))

    @cached_property
    def body(self) -> Any:
        """The response body as JSON, or :data:`NOT_JSON`."""
        response = self.entry.get("response")
        return body_json(response.get("content")) if isinstance(response, Mapping) else NOT_JSON


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    type: str
    json_path: JsonPath | None = None
    header_name: re.Pattern[str] | None = None
    value: re.Pattern[str] | None = None
    service: re.Pattern[str] | None = None
    path: re.Pattern[str] | None = None
    response_time: float | None = None

    def applies(self, subject: Subject) -> bool:
        if self.path is not None and not self.path.search(subject.path):
            return False
        return self.service is None or any(self.service.search(name) for name in subject.names)

    def failure(self, subject: Subject) -> str | None:
        """Why the entry breaks the rule, or None when it keeps it."""
        entry = subject.entry
        response = entry.get("response")
        if self.type == "slo":
            assert self.response_time is not None
            if not isinstance(response, Mapping):
                return "no response was seen"
            elapsed = float(entry.get("elapsedTime") or 0.0)
            if elapsed > self.response_time:
                return f"took {elapsed:.1f} ms, over {self.response_time:g} ms"
            return None
        if not isinstance(response, Mapping):
            return "no response was seen"
        if self.type == "header":
            return self._header_failure(response)
        return self._json_failure(subject.body)

    def _header_failure(self, response: Mapping[str, Any]) -> str | None:
        assert self.header_name is not None
        headers = response.get("headers")
        found = [
            (name, value)
            for name, values in (headers.items() if isinstance(headers, Mapping) else ())
            if self.header_name.search(str(name))
            for value in (values if isinstance(values, list) else [values])
        ]
        if not found:
            return f"no response header matches {self.header_name.pattern!r}"
        for name, value in found:
            if self.value is not None and not self.value.search(str(value)):
                return f"header {name} is {str(value)[:80]!r}, not matching {self.value.pattern!r}"
        return None

    def _json_failure(self, body: Any) -> str | None:
        assert self.json_path is not None
        if body is NOT_JSON:
            return "the response body is not JSON"
        values = self.json_path.find(body)
        if not values:
            return f"{self.json_path.text} is not in the response body"
        if self.value is not None:
            for value in values:
                text = json_text(value)
                if not self.value.search(text):
                    return (
                        f"{self.json_path.text} is {text[:80]!r}, "
                        f"not matching {self.value.pattern!r}"
                    )
        return None


class Rules:
    """The rules of one file, checked in the order written."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    def __len__(self) -> int:
        return len(self.rules)

    def check(self, entry: Mapping[str, Any]) -> dict[str, list[Any]] | None:
        """``{passed, failed}`` for an HTTP entry with a request; None for any other."""
        if entry.get("protocol", {}).get("name") != "http" or not isinstance(
            entry.get("request"), Mapping
        ):
            return None
        passed: list[str] = []
        failed: list[dict[str, str]] = []
        subject = Subject(entry)
        for rule in self.rules:
            if not rule.applies(subject):
                continue
            reason = rule.failure(subject)
            if reason is None:
                passed.append(rule.name)
            else:
                failed.append({"name": rule.name, "reason": reason})
        return {"passed": passed, "failed": failed}


def load_rules(text: str, source: str = "rules file") -> Rules:
    """Parse a rules file's YAML text; :class:`RulesError` says what is wrong and where."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        raise RulesError(f"{source}: expected a top-level 'rules:' list")
    unknown = sorted(str(key) for key in document if key != "rules")
    if unknown:
        raise RulesError(f"{source}: unknown top-level key {unknown[0]!r} (only 'rules')")
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, raw in enumerate(document["rules"], start=1):
        rule = _rule(raw, f"{source}: rule {number}")
        if rule.name in seen:
            raise RulesError(f"{source}: rule {number} ({rule.name!r}), field 'name': repeated")
        seen.add(rule.name)
        rules.append(rule)
    return Rules(tuple(rules))


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise RulesError(f"{where}: expected a mapping with name, type …")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RulesError(f"{where}, field 'name': a non-empty string is required")
    where = f"{where} ({name!r})"

    def fail(field: str, problem: str) -> RulesError:
        return RulesError(f"{where}, field {field!r}: {problem}")

    kind = raw.get("type")
    if kind not in RULE_TYPES:
        raise fail("type", f"{kind!r} is not one of {', '.join(RULE_TYPES)}")
    for key in raw:
        if key not in _FIELDS[kind]:
            raise fail(
                str(key), f"not a field of {kind} rules ({', '.join(sorted(_FIELDS[kind]))})"
            )

    def regex(field: str) -> re.Pattern[str] | None:
        value = raw.get(field)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise fail(field, "a regular expression (a string) is required")
        try:
            return re.compile(str(value))
        except re.error as error:
            raise fail(field, f"bad regular expression: {error}") from None

    common: dict[str, Any] = {
        "name": name,
        "type": kind,
        "service": regex("service"),
        "path": regex("path"),
    }
    if kind == "slo":
        limit = raw.get("response-time")
        if not isinstance(limit, int | float) or isinstance(limit, bool) or limit <= 0:
            raise fail("response-time", "a positive number of milliseconds is required")
        return Rule(**common, response_time=float(limit))
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        what = "a JSONPath such as $.id" if kind == "json" else "a header-name regex"
        raise fail("key", f"{what} is required")
    if kind == "json":
        try:
            json_path = JsonPath.parse(key)
        except JsonPathError as error:
            raise fail("key", str(error)) from None
        return Rule(**common, json_path=json_path, value=regex("value"))
    header = regex("key")
    assert header is not None
    # header names are case-insensitive
    return Rule(
        **common,
        header_name=re.compile(header.pattern, re.IGNORECASE),
        value=regex("value"),
    )


# -- entry helpers ----------------------------------------------------------------------------


def header_values(headers: Any, name: str) -> list[str]:
    """Values of header ``name`` (any case) in a ``{name: value | [values]}`` object."""
    if not isinstance(headers, Mapping):
        return []
    wanted = name.lower()
    values: list[str] = []
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            values.extend(str(one) for one in (value if isinstance(value, list) else [value]))
    return values


def destination_names(entry: Mapping[str, Any]) -> Iterator[str]:
    """What a rule's ``service`` may name: the resolved name, the Host, and ip:port."""
    dst = entry.get("dst") or {}
    if dst.get("name"):
        yield str(dst["name"])
    headers = (entry.get("request") or {}).get("headers")
    yield from header_values(headers, ":authority") or header_values(headers, "host")
    yield endpoint_address(dst)


def endpoint_address(endpoint: Mapping[str, Any]) -> str:
    """An entry's ``src``/``dst`` as ``ip:port`` (``[ip]:port`` for IPv6)."""
    return str(Endpoint(str(endpoint.get("ip", "")), endpoint.get("port", 0)))


def body_json(body: Any) -> Any:
    """A HAR ``content``/``postData`` object's text parsed as JSON (shared: never change it),
    or ``NOT_JSON``."""
    if not isinstance(body, Mapping) or not isinstance(body.get("text"), str):
        return NOT_JSON
    text: str | bytes = body["text"]
    if body.get("encoding") == "base64":
        try:
            text = base64.b64decode(body["text"], validate=True)
        except (binascii.Error, ValueError):
            return NOT_JSON
    return parse_json(text)


def json_text(value: Any) -> str:
    """A JSON value as a regex sees it: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def rules_row(rules: Mapping[str, Any]) -> dict[str, int]:
    """The list row's mark: how many rules passed and failed."""
    return {"passed": len(rules.get("passed", ())), "failed": len(rules.get("failed", ()))}


def rules_section(rules: Mapping[str, Any]) -> Section:
    """The detail view's 'Rules' table: each rule with its verdict and a filter to find more."""
    rows = [
        row(
            failure["name"],
            f"failed: {failure['reason']}",
            equals(f"rules.failed[{index}].name", failure["name"]),
        )
        for index, failure in enumerate(rules.get("failed", ()))
    ]
    rows += [
        row(name, "passed", equals(f"rules.passed[{index}]", name))
        for index, name in enumerate(rules.get("passed", ()))
    ]
    return table("Rules", rows)
