"""--tls-keylog stays on this machine: refused in a cluster, in the flag and in the config."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mizu_cli.common import cluster_plugin_settings, with_tls_keylog
from mizu_cli.main import cli


def test_tap_in_a_cluster_refuses_a_key_log() -> None:
    result = CliRunner().invoke(cli, ["tap", "--tls-keylog", "keys.log"])
    assert result.exit_code == 2
    assert "in a cluster, Mizu reads no application's secrets" in result.output


def test_agents_in_a_cluster_refuse_a_configured_key_log() -> None:
    assert cluster_plugin_settings({"http": {"max-body-size": 1}}) == {"http": {"max-body-size": 1}}
    with pytest.raises(click.ClickException, match=r"plugins\.tls\.keylog"):
        cluster_plugin_settings({"tls": {"keylog": "/keys.log"}})


def test_the_flag_joins_the_configured_settings() -> None:
    assert with_tls_keylog({"http": {"a": 1}}, "k.log") == {
        "http": {"a": 1},
        "tls": {"keylog": "k.log"},
    }
    assert with_tls_keylog({"tls": {}}, None) == {"tls": {}}
