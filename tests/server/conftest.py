"""Fixtures of the hub's tests."""

from __future__ import annotations

import pytest

from mizu_core.plugins import PluginManager


@pytest.fixture(scope="session")
def plugins() -> PluginManager:
    manager = PluginManager().discover()
    manager.configure({})
    return manager
