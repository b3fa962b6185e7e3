"""Mizu plugin for AMQP 0-9-1 (RabbitMQ): frames, content assembly, pairing, confirms."""

import mizu_core  # noqa: F401  (first: it chooses the build of the modules below)

__version__ = "0.1.0"
