"""Ranks first and fails: in dissect for port 8081, in its dissector elsewhere."""

from mizu_core import Dissector, Protocol, hookimpl

FAULTY = Protocol(
    name="faulty", version="1", abbr="BAD", long_name="Faulty", macro="faulty", priority=1
)


class FaultyDissector(Dissector):
    def feed(self, direction, data, timestamp):
        raise ValueError("faulty dissector fails on purpose")


@hookimpl
def protocols():
    return [FAULTY]


@hookimpl
def configure(settings):
    unknown = set(settings) - {"mode"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]}")


@hookimpl
def dissect(context, client_head, server_head):
    if not client_head and not server_head:
        return None
    if context.connection.server.port == 8081:
        raise RuntimeError("faulty dissect fails on purpose")
    return FaultyDissector(context)
