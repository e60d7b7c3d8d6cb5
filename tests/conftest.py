"""Shared fixtures: the ``comfy_server`` plugin, and ``fake_server`` for our own suites."""

from __future__ import annotations

from typing import Iterator

import pytest

from comfysync.testing import FakeComfyUI

pytest_plugins = ["comfysync.testing.pytest_plugin"]


@pytest.fixture
def fake_server(comfy_server: FakeComfyUI) -> Iterator[FakeComfyUI]:
    """A running FakeComfyUI (alias of the plugin's ``comfy_server``)."""
    yield comfy_server
