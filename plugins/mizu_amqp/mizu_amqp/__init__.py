"""Mizu plugin for AMQP 0-9-1 (RabbitMQ): frames, content assembly, pairing, confirms."""

__version__ = "0.1.0"
