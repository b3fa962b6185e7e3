"""Claims every connection, but ranks after turns."""

from mizu_core import Protocol, hookimpl
from mizu_turns.turns import TurnDissector

EAGER = Protocol(
    name="eager", version="1", abbr="EAGR", long_name="Eager", macro="eager", priority=9
)


@hookimpl
def protocols():
    return [EAGER]


@hookimpl
def dissect(context, client_head, server_head):
    return TurnDissector(context, EAGER)
