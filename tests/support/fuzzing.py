"""Property tests on random or mutated input (a plugin's table reader against pamqp's, say).

Decorate them with :data:`fuzz_settings`: the default suite runs a few dozen examples per test;
``nox -s fuzz`` (``MIZU_FUZZ=1``) runs thousands. Whole plugins on mutated traffic, with a time
limit per input, are run by tests/fuzz/harness.py.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

fuzz_settings = (
    settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    if os.environ.get("MIZU_FUZZ")
    else settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
)
