"""``mizu_kafka/messages.py`` is generated: it says from what, and regenerating gives it back."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import kafka

PLUGIN = Path(__file__).parents[3] / "plugins" / "mizu_kafka"
MESSAGES = PLUGIN / "mizu_kafka" / "messages.py"


def generator() -> ModuleType:
    path = PLUGIN / "tools" / "generate_messages.py"
    spec = importlib.util.spec_from_file_location("generate_messages", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_same_file() -> None:
    tool = generator()
    source = tool.formatted(tool.generate(tool.kafka_python_directory()))
    assert source == MESSAGES.read_text(encoding="utf-8"), (
        "messages.py differs from what tools/generate_messages.py makes: regenerate it"
    )


def test_the_header_names_the_input_and_the_kafka_release() -> None:
    header = MESSAGES.read_text(encoding="utf-8").split('"""')[1]
    assert f"kafka-python {kafka.__version__}'s copy" in header
    paths = sorted(generator().kafka_python_directory().glob("*.json"))
    assert f"{len(paths)} files" in header
    assert re.search(r"SHA-256 [0-9a-f]{64}\.", header)
    assert re.search(r"API versions are those of Apache Kafka \d+\.\d+", header)
