"""The Kafka plugin's build: its hot path compiled with mypyc when a C compiler is there (Mizu's
docs/compiled.md; the modules are listed in pyproject.toml's [tool.mizu.compiled])."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from build_compiled import setup_compiled

setup_compiled(__file__)
