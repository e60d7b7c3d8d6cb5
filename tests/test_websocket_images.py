"""``SaveImageWebsocket`` images are files of the result (``type`` ``"websocket"``), per node,
in order, read and saved from the bytes received over the socket; sampler previews stay
events only."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, Dict, List

import pytest
from PIL import Image

from comfysync import ComfyApi, cli, events
from comfysync._results import OutputFile
from comfysync.testing import FakeComfyUI


def _wf(seed: int) -> Dict[str, Any]:
    return {
        "1": {"class_type": "ProbeNoise",
              "inputs": {"width": 6, "height": 4, "batch_size": 3, "seed": seed}},
        "2": {"class_type": "ProbeProgress",  # a sampler-like node: JPEG previews
              "inputs": {"image": ["1", 0], "steps": 3, "delay_ms": 0, "preview": "JPEG",
                         "seed": seed}},
        "3": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "ProbeNoise",
              "inputs": {"width": 5, "height": 5, "batch_size": 2, "seed": seed + 1}},
        "5": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["4", 0],
                                                    "filename_prefix": "ws/plain"}},
    }


def _noise(width: int, height: int, count: int, seed: int) -> List[bytes]:
    """The pixels ProbeNoise makes for these inputs."""
    rng = random.Random(seed)
    return [rng.randbytes(width * height * 3) for _ in range(count)]


def _pixels(f: OutputFile) -> bytes:
    with Image.open(io.BytesIO(f.read())) as image:
        return image.convert("RGB").tobytes()


def _view_requests(server: FakeComfyUI) -> int:
    return sum(1 for r in server.requests if r.path == "/view")


@pytest.mark.parametrize("metadata", [True, False], ids=["type4-frames", "type1-frames"])
def test_websocket_images_are_files_in_order_without_download(
    fake_server: FakeComfyUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata: bool
) -> None:
    if not metadata:  # an older client: previews arrive as id-less type-1 frames
        monkeypatch.setattr("comfysync._ws.listener.DEFAULT_FEATURE_FLAGS", {})
    seed = 11 if metadata else 12
    previews: List[events.Preview] = []
    with ComfyApi(fake_server.url) as api:
        result = api.run_workflow(_wf(seed), timeout=30, on_preview=previews.append)

    received = [f for f in result.files if f.type == "websocket"]
    # per node, nodes in the order the server ran them, images in the order they came
    ran = list(dict.fromkeys(p.node_id for p in previews if p.node_id in ("3", "5")))
    names = {"3": [f"websocket_3_0000{i}.png" for i in (1, 2, 3)],
             "5": [f"websocket_5_0000{i}.png" for i in (1, 2)]}
    assert sorted(ran) == ["3", "5"]
    assert [(f.node_id, f.filename) for f in received] == [
        (node, name) for node in ran for name in names[node]]
    assert [f for f in result.images if f.type == "websocket"] == received
    assert [f.filename for f in result.files_of("5")] == names["5"]
    assert [f.node_id for f in result.files if f.type == "output"] == ["6", "6"]
    # the sampler's JPEG previews stay events: no file of node 2
    assert not result.files_of("2")
    assert sum(p.node_id == "2" for p in previews) == 3
    assert sum(p.node_id in ("3", "5") for p in previews) == 5  # still events as well

    # each file holds the image that node sent, in order; read and saved without /view,
    # after the client is closed
    before = _view_requests(fake_server)
    expected = {"3": _noise(6, 4, 3, seed), "5": _noise(5, 5, 2, seed + 1)}
    assert [_pixels(f) for f in received] == expected[ran[0]] + expected[ran[1]]
    first_of_3 = result.files_of("3")[0]
    assert all(f.mime_type == "image/png" and f.is_image and f.url == "" for f in received)
    first = first_of_3.save(tmp_path / "out")
    again = first_of_3.save(tmp_path / "out")  # a taken name is never overwritten
    assert first.name == "websocket_3_00001.png" and again.name == "websocket_3_00001-1.png"
    assert first.read_bytes() == again.read_bytes() == first_of_3.read()
    exact = received[4].save(tmp_path / "exact.png")
    assert exact == tmp_path / "exact.png" and exact.read_bytes() == received[4].read()
    saved = result.save_all(tmp_path / "all")
    assert sorted(p.name for p in saved) == sorted(
        [f.filename for f in received] + [f.filename for f in result.files_of("6")])
    assert _view_requests(fake_server) - before == 2  # only the two SaveImage files


def test_a_workflow_without_websocket_nodes_keeps_previews_out_of_files(
    fake_server: FakeComfyUI,
) -> None:
    wf = _wf(21)
    for node in ("3", "5"):
        del wf[node]
    wf["7"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                     "filename_prefix": "ws/other"}}
    with ComfyApi(fake_server.url) as api:
        result = api.run_workflow(wf, timeout=30)
    assert {f.type for f in result.files} == {"output"}


def test_cli_run_saves_websocket_images(fake_server: FakeComfyUI, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Images a SaveImageWebsocket node streamed are saved like any output, from the bytes
    the run received (the server stored nothing to download)."""
    wf = tmp_path / "ws.json"
    wf.write_text(json.dumps({
        "1": {"class_type": "ProbeNoise",
              "inputs": {"width": 4, "height": 4, "batch_size": 2, "seed": 5}},
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", str(wf), "--server", fake_server.url, "--out", "o", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    files = json.loads(out)["files"]
    assert [(f["type"], f["filename"]) for f in files] == [
        ("websocket", "websocket_2_00001.png"), ("websocket", "websocket_2_00002.png")]
    assert all((tmp_path / f["path"]).read_bytes().startswith(b"\x89PNG") for f in files)
    assert not any(r.path == "/view" for r in fake_server.requests)
