"""The plugin's settings (``plugins.http.*``), parsed by the ``configure`` hook; its
dissectors read them from their context (``context.settings``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_MAX_BODY_SIZE = 1 << 20


class Settings:
    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = ("max_body_size",)

    def __init__(self, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> None:
        self.max_body_size = max_body_size
        """Bytes kept of each body (and of each decoded body); the rest is counted, not kept."""


KEYS = {"max-body-size": "max_body_size"}


def parse(values: Mapping[str, Any]) -> Settings:
    """Settings from the ``plugins.http.*`` keys; ValueError names an unknown key or bad value."""
    settings = Settings()
    for key, value in values.items():
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r} (known: {', '.join(sorted(KEYS))})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            try:
                value = int(str(value), 0)
            except ValueError:
                raise ValueError(f"{key}: expected a byte count, got {value!r}") from None
            if value < 0:
                raise ValueError(f"{key}: expected a byte count, got {value!r}")
        setattr(settings, KEYS[key], value)
    return settings
