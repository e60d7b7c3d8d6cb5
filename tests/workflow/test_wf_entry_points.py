"""Workflow input forms and suggestions through the real entry points, against FakeComfyUI
on 127.0.0.1: ``run_workflow``, ``comfysync run``, ``comfysync nodes``, ``get_models``."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Dict

import pytest
from _cli import run_cli

from comfysync import ComfyApi, ComfyHTTPError, Workflow, WorkflowFormatError, cli

INVERT: Dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1,
                                                 "color": 255}, "_meta": {"title": "Canvas"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "wf"}},
}


def _png_with_prompt(prompt: Dict[str, Any]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"tEXt", b"prompt\0" + json.dumps(prompt).encode())
            + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b""))


def test_python_built_workflow_with_integer_ids_runs(fake_server: Any) -> None:
    data = {1: INVERT["1"], 2: {"class_type": "ImageInvert", "inputs": {"image": [1, 0]}},
            3: {"class_type": "SaveImage", "inputs": {"images": [2, 0], "filename_prefix": "i"}}}
    with ComfyApi(fake_server.url) as api:
        result = api.run_workflow(data, timeout=30)
    assert result.status == "success" and len(result.images) == 1


def test_run_workflow_takes_a_request_body_and_a_png(fake_server: Any, tmp_path: Path) -> None:
    png = tmp_path / "ComfyUI_00001_.png"
    png.write_bytes(_png_with_prompt(INVERT))
    with ComfyApi(fake_server.url) as api:
        body = {"prompt": INVERT, "client_id": "copied-from-the-browser"}
        assert api.run_workflow(body, timeout=30).status == "success"
        assert api.run_workflow(png, timeout=30).status == "success"
        assert api.run_workflow(Workflow.load(png), timeout=30).status == "success"


def test_an_added_typo_is_caught_before_posting(fake_server: Any) -> None:
    wf = Workflow(INVERT)
    wf["1"]["inputs"]["widht"] = 32
    with ComfyApi(fake_server.url) as api:
        with pytest.raises(WorkflowFormatError, match="unknown input 'widht' — did you mean "
                                                      "'width'"):
            api.run_workflow(wf, timeout=30)
    assert not fake_server.executions()  # nothing was posted


def test_cli_runs_a_png_and_a_request_body(fake_server: Any, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "in.png"
    png.write_bytes(_png_with_prompt(INVERT))
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"prompt": INVERT, "client_id": "x"}))
    for path in (png, body):
        code, out, err = run_cli(capsys, "run", str(path), "--server", fake_server.url,
                                 "--out", "o")
        assert code == 0 and "succeeded" in out, err


def test_cli_suggests_node_classes_and_inputs(fake_server: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    server = ["--server", fake_server.url]
    code, _, err = run_cli(capsys, "nodes", "KSamplr", *server)
    assert code == cli.EXIT_USAGE and "did you mean 'KSampler'" in err
    code, _, err = run_cli(capsys, "nodes", "emptyimage", *server)
    assert code == cli.EXIT_USAGE and "did you mean 'EmptyImage'" in err
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(INVERT))
    code, out, err = run_cli(capsys, "run", str(path), *server, "--set", "1.widht=3")
    assert code == cli.EXIT_USAGE and out == ""
    assert "has no input 'widht' — did you mean 'width'?" in err
    assert "wf[" not in err and ".inputs[" not in err  # shell advice, not Python
    assert "comfysync nodes" in err
    code, _, err = run_cli(capsys, "run", str(path), *server, "--set", "Canvas.width")
    assert code == cli.EXIT_USAGE and "--set 'Positive prompt.text=a cat'" in err


def test_unknown_model_folder_lists_the_valid_ones(fake_server: Any) -> None:
    api = ComfyApi(fake_server.url)
    try:
        with pytest.raises(ComfyHTTPError) as info:
            api.get_models("checkpoint")
        folders = api.get_model_folders()
    finally:
        api.close()
    message = str(info.value)
    assert info.value.status == 404 and "did you mean 'checkpoints'" in message
    assert all(folder in message for folder in folders)


@pytest.fixture(autouse=True)
def _isolated(isolated_cli: None) -> None:
    """Every test of this module runs with the ``isolated_cli`` fixture (tests/conftest.py)."""
