"""No container engine runs here: check that the Dockerfile refers only to what exists."""

from __future__ import annotations

import shlex
from pathlib import Path

from click.testing import CliRunner

from mizu_cli.main import cli

ROOT = Path(__file__).resolve().parents[3]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_every_copied_path_and_installed_plugin_exists() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for instruction, argument in instructions():
        if instruction == "COPY" and not argument.startswith("--from"):
            *sources, _ = shlex.split(argument)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source
        if instruction == "RUN" and "pip wheel" in argument:
            for word in shlex.split(argument):
                if word.startswith("./plugins/"):
                    assert (ROOT / word / "pyproject.toml").is_file(), word


def test_the_image_commands_exist() -> None:
    commands = [arg for instruction, arg in instructions() if instruction == "CMD"]
    assert commands == ['["mizu", "hub"]']
    for command in ("hub", "tapper"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0, result.output
