"""Mizu plugin for Apache Kafka: requests and responses of every API, records, pairing.

Registered through the ``mizu.plugins`` entry point ``kafka`` (module :mod:`mizu_kafka.plugin`).
"""

import mizu_core  # noqa: F401  (first: it chooses the build of the modules below)

__version__ = "0.1.0"
