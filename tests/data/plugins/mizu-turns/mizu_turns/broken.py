"""Fails to import, as a plugin with a missing dependency would."""

import mizu_turns_missing_dependency  # noqa: F401
