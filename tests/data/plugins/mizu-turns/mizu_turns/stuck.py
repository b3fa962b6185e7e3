"""Claims the connections to one port (``plugins.stuck.port``, 7001 by default), then never
returns from its dissector's feed: a plugin stuck in a loop on its input. With
``plugins.stuck.stubborn`` it also swallows whatever interrupts it, even KeyboardInterrupt."""

from mizu_core import Dissector, Protocol, hookimpl

STUCK = Protocol(
    name="stuck", version="1", abbr="STUCK", long_name="Stuck", macro="stuck", priority=2
)


class StuckDissector(Dissector):
    def feed(self, direction, data, timestamp):
        if not self.context.settings.get("stubborn"):
            while True:
                pass
        while True:
            try:
                while True:
                    pass
            except BaseException:  # swallowing everything is the point
                continue


@hookimpl
def protocols():
    return [STUCK]


@hookimpl
def configure(settings):
    unknown = set(settings) - {"port", "stubborn"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]}")
    return {"port": int(settings.get("port", 7001)), "stubborn": bool(settings.get("stubborn"))}


@hookimpl
def dissect(context, client_head, server_head):
    if context.connection.server.port != context.settings["port"]:
        return None
    return StuckDissector(context)
