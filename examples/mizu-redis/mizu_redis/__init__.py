"""Redis for Mizu: a dissector plugin for RESP2 and RESP3 (entry point ``redis``)."""
