"""What ``comfysync run`` shows when a node raises on the server, and the traceback a
``PromptExecutionError`` carries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _cli import run_cli

from comfysync import ComfyApi, cli
from comfysync.errors import PromptExecutionError

FAILING = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                  "color": 0}},
    "2": {"class_type": "ProbeFail", "inputs": {"image": ["1", 0], "message": "boom!"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
}


def test_traceback_is_a_string_and_its_lines_stay(fake_server: Any) -> None:
    with ComfyApi(fake_server.url) as api:
        with pytest.raises(PromptExecutionError) as info:
            api.run_workflow(FAILING, timeout=30)
    err = info.value
    assert isinstance(err.traceback, str) and "raise RuntimeError(message)" in err.traceback
    assert len(err.traceback_lines) > 1 and all(isinstance(x, str) for x in err.traceback_lines)
    assert err.traceback == "".join(err.traceback_lines) == err.traceback_text


def test_traceback_given_joined_or_missing() -> None:
    joined = PromptExecutionError(prompt_id="p", traceback='  File "a"\n  File "b"\n')
    assert joined.traceback == '  File "a"\n  File "b"\n'
    assert joined.traceback_lines == ['  File "a"\n', '  File "b"\n']
    none = PromptExecutionError(prompt_id="p")
    assert none.traceback == "" and none.traceback_lines == []


def test_debug_prints_the_server_side_traceback(fake_server: Any, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    wf = tmp_path / "fail.json"
    wf.write_text(json.dumps(FAILING), encoding="utf-8")
    code, _, err = run_cli(capsys, "--debug", "run", str(wf), "--server", fake_server.url,
                           "--progress", "none")
    assert code == cli.EXIT_FAILED
    assert "Server-side traceback of node 2 (ProbeFail)" in err
    assert "raise RuntimeError(message)" in err  # the node's own frame, from the server
    assert "RuntimeError: boom!" in err
    # not the client's stack: where it waited tells nothing about the failure
    assert "comfysync/cli" not in err and "Traceback (most recent call last)" not in err
    assert err.rstrip("\n").splitlines()[-1].startswith("comfysync: error: prompt")

    code, out, err = run_cli(capsys, "run", str(wf), "--server", fake_server.url, "--json")
    doc = json.loads(out)
    assert isinstance(doc["error"]["traceback"], str)
    assert "raise RuntimeError(message)" in doc["error"]["traceback"]
    assert "Server-side" not in err  # only with --debug


def test_server_traceback_without_frames() -> None:
    exc = PromptExecutionError(prompt_id="p", node_id="7", node_type="X",
                               exception_type="ValueError", exception_message="bad\n")
    text = cli.server_traceback(exc)
    assert "node 7 (X) in prompt p" in text and "(the server sent no traceback)" in text
    assert text.endswith("ValueError: bad\n")



@pytest.fixture(autouse=True)
def _isolated(isolated_cli: None) -> None:
    """Every test of this module runs with the ``isolated_cli`` fixture (tests/conftest.py)."""
