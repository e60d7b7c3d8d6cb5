"""Shared fixtures: the ``comfy_server`` plugin, and ``fake_server`` for our own suites."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from comfysync.testing import FakeComfyUI

pytest_plugins = ["comfysync.testing.pytest_plugin"]


@pytest.fixture
def fake_server(comfy_server: FakeComfyUI) -> Iterator[FakeComfyUI]:
    """A running FakeComfyUI (alias of the plugin's ``comfy_server``)."""
    yield comfy_server


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No server settings from the developer's environment, and the working directory a
    fresh temporary one (commands that save write there). CLI test modules request it
    from an autouse fixture of their own."""
    for name in ("COMFYUI_URL", "COMFYUI_TOKEN", "COMFYUI_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
