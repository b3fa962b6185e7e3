"""What every tshark oracle run needs."""

REASSEMBLE_OUT_OF_ORDER = ("-o", "tcp.reassemble_out_of_order:TRUE")
"""Loopback captures under load can hold segments out of order; without this option tshark
stops dissecting a stream at the first one while Mizu reorders it."""
