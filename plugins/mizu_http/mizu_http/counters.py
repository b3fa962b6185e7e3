"""Process-wide counts of what the plugin could not decode (gaps, garbage, lost HPACK state).

The core has no place for a plugin's own statistics yet; tests and a debugger read these.
"""

from __future__ import annotations

from collections import Counter

COUNTERS: Counter[str] = Counter()
