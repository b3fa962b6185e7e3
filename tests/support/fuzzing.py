"""Fuzz tests feed mutated real traffic to each plugin's dissectors: no exception may escape.

Decorate them with :data:`fuzz_settings`: the default suite runs a few dozen examples per test;
``nox -s fuzz`` (``MIZU_FUZZ=1``) runs thousands.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

fuzz_settings = (
    settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    if os.environ.get("MIZU_FUZZ")
    else settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
)
