"""Mizu's HTTP plugin: HTTP/1.0 and 1.1, HTTP/2 (h2c), gRPC and WebSocket.

Registered through the ``mizu.plugins`` entry point ``http`` (module :mod:`mizu_http.plugin`).
"""

import mizu_core  # noqa: F401  (first: it chooses the build of the modules below)

__version__ = "0.1.0"
