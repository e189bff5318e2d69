"""The ``server`` fixture of the fault tests (helpers are in ``_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import Server, kill, start_server


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server with the test's ``server_args`` marker arguments; must stop cleanly (exit 0)."""
    marker = request.node.get_closest_marker("server_args")
    extra = list(marker.args) if marker else []
    srv = start_server(tmp_path / "data", extra)
    try:
        yield srv
    finally:
        code = kill(srv.proc)
    assert code == 0, f"the server exited with {code}:\n{srv.stderr()[-3000:]}"
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server_args(*args): extra `mailproto serve` arguments")
