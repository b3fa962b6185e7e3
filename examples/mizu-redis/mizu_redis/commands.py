"""What Redis commands are called and where their key is (from Redis 7's ``COMMAND INFO``)."""

from __future__ import annotations


def names(text: str) -> frozenset[str]:
    """The words of ``text``: long tables of command names read best as text."""
    return frozenset(text.split())


CONTAINERS = names(
    "ACL CLIENT CLUSTER COMMAND CONFIG DEBUG FUNCTION LATENCY MEMORY MODULE OBJECT PUBSUB SCRIPT "
    "SLOWLOG XGROUP XINFO"
)
"""Commands whose first argument is a subcommand: the method is ``CONFIG GET``, as Redis's
documentation names it."""

_KEY_FIRST = names(
    """
    APPEND BITCOUNT BITFIELD BITFIELD_RO BITPOS BLMOVE BLPOP BRPOP BRPOPLPUSH BZPOPMAX BZPOPMIN
    COPY DECR DECRBY DEL DUMP EXISTS EXPIRE EXPIREAT EXPIRETIME GEOADD GEODIST GEOHASH GEOPOS
    GEORADIUS GEORADIUSBYMEMBER GEORADIUSBYMEMBER_RO GEORADIUS_RO GEOSEARCH GEOSEARCHSTORE GET
    GETBIT GETDEL GETEX GETRANGE GETSET HDEL HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN
    HMGET HMSET HRANDFIELD HSCAN HSET HSETNX HSTRLEN HVALS INCR INCRBY INCRBYFLOAT LCS LINDEX
    LINSERT LLEN LMOVE LPOP LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MGET MOVE MSET MSETNX PERSIST
    PEXPIRE PEXPIREAT PEXPIRETIME PFADD PFCOUNT PFMERGE PSETEX PTTL RENAME RENAMENX RESTORE RPOP
    RPOPLPUSH RPUSH RPUSHX SADD SCARD SDIFF SDIFFSTORE SET SETBIT SETEX SETNX SETRANGE SINTER
    SINTERSTORE SISMEMBER SMEMBERS SMISMEMBER SMOVE SORT SORT_RO SPOP SRANDMEMBER SREM SSCAN
    STRLEN SUBSTR SUNION SUNIONSTORE TOUCH TTL TYPE UNLINK WATCH XACK XADD XAUTOCLAIM XCLAIM XDEL
    XLEN XPENDING XRANGE XREVRANGE XSETID XTRIM ZADD ZCARD ZCOUNT ZDIFFSTORE ZINCRBY
    ZINTERSTORE ZLEXCOUNT ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE
    ZRANGESTORE ZRANK ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE
    ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNIONSTORE
    PUBLISH SPUBLISH SUBSCRIBE SSUBSCRIBE PSUBSCRIBE UNSUBSCRIBE SUNSUBSCRIBE PUNSUBSCRIBE
    """
) | {
    f"{container} {sub}"
    for container, subs in {
        "OBJECT": "ENCODING FREQ IDLETIME REFCOUNT",
        "MEMORY": "USAGE",
        "XGROUP": "CREATE CREATECONSUMER DELCONSUMER DESTROY SETID",
        "XINFO": "CONSUMERS GROUPS STREAM",
    }.items()
    for sub in subs.split()
}
"""Commands whose first argument (after a subcommand) is their key; a channel or a pattern
for pub/sub."""

_KEY_AFTER_NUMKEYS = {
    "EVAL": 1,
    "EVALSHA": 1,
    "EVAL_RO": 1,
    "EVALSHA_RO": 1,
    "FCALL": 1,
    "FCALL_RO": 1,
    "LMPOP": 0,
    "ZMPOP": 0,
    "SINTERCARD": 0,
    "ZDIFF": 0,
    "ZINTER": 0,
    "ZINTERCARD": 0,
    "ZUNION": 0,
    "BLMPOP": 1,
    "BZMPOP": 1,
}
"""Commands with a ``numkeys`` argument at this index: the key follows when numkeys > 0."""

_KEY_AT = {"BITOP": 1, "MIGRATE": 2}
"""Commands whose key is the argument at this index."""


def command_name(words: list[str]) -> tuple[str, list[str]]:
    """The command's name (``GET``, ``CONFIG GET``) and its arguments after the name."""
    if not words:
        return "", []
    name = words[0].upper()
    if name in CONTAINERS and len(words) > 1:
        return f"{name} {words[1].upper()}", words[2:]
    return name, words[1:]


def command_key(name: str, args: list[str]) -> str | None:
    """The command's key, when it has one."""
    if name in _KEY_FIRST:
        return args[0] if args else None
    if name in _KEY_AT:
        index = _KEY_AT[name]
        return args[index] if len(args) > index else None
    if name in ("XREAD", "XREADGROUP"):
        upper = [arg.upper() for arg in args]
        return args[upper.index("STREAMS") + 1] if "STREAMS" in upper[:-1] else None
    numkeys_at = _KEY_AFTER_NUMKEYS.get(name)
    if numkeys_at is not None and len(args) > numkeys_at + 1:
        numkeys = args[numkeys_at]
        return args[numkeys_at + 1] if numkeys.isdigit() and int(numkeys) > 0 else None
    return None


PASSWORD_SETTINGS = frozenset({"requirepass", "masterauth"})
"""``CONFIG SET`` parameters whose value is a password."""


def without_password(name: str, args: list[str]) -> tuple[list[str], str | None]:
    """A command's arguments without the password it carries (``AUTH [user] password``,
    ``HELLO 3 AUTH user password``, ``MIGRATE … AUTH password`` or ``AUTH2 user password``,
    ``CONFIG SET requirepass password``), and that password: the entry keeps it in a field of
    its own, which the plugin declares secret."""
    index: int | None = None
    if name == "AUTH" and args:
        index = len(args) - 1
    elif name in ("HELLO", "MIGRATE"):
        upper = [arg.upper() for arg in args]
        if "AUTH2" in upper and name == "MIGRATE":
            index = upper.index("AUTH2") + 2
        elif "AUTH" in upper:
            index = upper.index("AUTH") + (2 if name == "HELLO" else 1)
    elif name == "CONFIG SET":
        index = next(
            (at + 1 for at in range(0, len(args) - 1, 2) if args[at].lower() in PASSWORD_SETTINGS),
            None,
        )
    if index is None or index >= len(args):
        return args, None
    return args[:index] + args[index + 1 :], args[index]
