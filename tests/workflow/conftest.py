"""Shared fixtures for the workflow tests: the recorded v0.3.64 node definitions, the
hand-written default UI workflow, and the ``comfyui-workflow-templates`` package."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

DATA = Path(__file__).parent / "data"


def _load_node_defs() -> Dict[str, Any]:
    with gzip.open(DATA / "object_info_v0.3.64.json.gz", "rt", encoding="utf-8") as fh:
        data: Dict[str, Any] = json.load(fh)
    return data


_NODE_DEFS = _load_node_defs()


@pytest.fixture
def node_defs() -> Dict[str, Any]:
    """``GET /object_info`` recorded from ComfyUI v0.3.64 (a shallow copy: tests may add
    classes; nothing mutates a definition)."""
    return dict(_NODE_DEFS)


@pytest.fixture
def default_ui() -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads((DATA / "default_ui.json").read_text(encoding="utf-8"))
    return data


def templates_dir() -> Path:
    """``comfyui_workflow_templates/templates`` of the installed test dependency."""
    spec = importlib.util.find_spec("comfyui_workflow_templates")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the dev dependency comfyui-workflow-templates==0.1.95 is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "templates"


@pytest.fixture
def templates_path() -> Path:
    return templates_dir()


@pytest.fixture
def template() -> Callable[[str], Dict[str, Any]]:
    def load(name: str) -> Dict[str, Any]:
        data: Dict[str, Any] = json.loads((templates_dir() / name).read_text(encoding="utf-8"))
        return data

    return load
