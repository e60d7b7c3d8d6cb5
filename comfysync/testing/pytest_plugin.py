"""pytest plugin: a ``comfy_server`` fixture yielding a running :class:`FakeComfyUI`.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["comfysync.testing.pytest_plugin"]``.
Each test gets a fresh server (own port, own temporary folders), stopped afterwards. Pass
options with the ``comfy_server_options`` marker::

    @pytest.mark.comfy_server_options(jobs_api=True, models={"loras": ["a.safetensors"]})
    def test_x(comfy_server): ...
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from ._server import FakeComfyUI


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "comfy_server_options(**kwargs): options for the comfy_server fixture"
    )


@pytest.fixture
def comfy_server(request: pytest.FixtureRequest) -> Iterator[FakeComfyUI]:
    """A started FakeComfyUI on 127.0.0.1 (ephemeral port), stopped after the test."""
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker("comfy_server_options")
    if marker is not None:
        options.update(marker.kwargs)
    server = FakeComfyUI(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
