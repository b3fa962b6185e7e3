"""Waiting on the programs the tests start."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest


def wait_for_stderr(process: subprocess.Popen[str], marker: str, seconds: float = 30) -> str:
    """The first line of ``process``'s standard error (a text pipe) that holds ``marker``;
    fails the test when the process ends first, or when a line comes after ``seconds``."""
    assert process.stderr is not None
    deadline = time.monotonic() + seconds
    for line in process.stderr:
        if marker in line:
            return line
        assert time.monotonic() < deadline, f"no {marker!r} from the process in {seconds} s"
    pytest.fail(f"the process exited ({process.wait()}) before saying {marker!r}")


_DASHBOARD = re.compile(r"dashboard at (https?://[^/\s]+)/\?token=([^\s&]+)")


@dataclass(frozen=True)
class Dashboard:
    """Where ``mizu`` said its dashboard is (``dashboard at http://…/?token=…``): the hub's
    base URL and the access token its API asks for."""

    base: str
    token: str

    @classmethod
    def parse(cls, text: str) -> Dashboard:
        found = _DASHBOARD.search(text)
        assert found is not None, f"no dashboard URL with a token in {text!r}"
        return cls(found.group(1), urllib.parse.unquote(found.group(2)))

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def page_url(self, **params: str) -> str:
        """The dashboard's address with ``params`` and the token, as a user opens it."""
        return f"{self.base}/?{urllib.parse.urlencode({**params, 'token': self.token})}"

    def get_json(self, path: str, **params: Any) -> Any:
        """``GET path?params`` from the hub's API, decoded."""
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
