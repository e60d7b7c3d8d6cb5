"""Local files given as workflow input values (a ``Path`` or ``bytes`` where a node expects an
input file, e.g. LoadImage's ``image``): kept by the normaliser as files to upload, never
posted; uploaded by the client right before the submit (here: a native FakeComfyUI)."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from PIL import Image

from comfysync import ComfyApi
from comfysync._workflow.input_files import InputFile, content_name, with_uploads
from comfysync._workflow.prompt import to_prompt
from comfysync.errors import WorkflowFormatError
from comfysync.testing import FakeComfyUI


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(uuid.uuid4().bytes[:3])).save(buffer, format="PNG")
    return buffer.getvalue()


def load(image: Any) -> Dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "SaveImage", "inputs": {"images": [1, 0],
                                                   "filename_prefix": "inputs/loaded"}},
    }


def test_the_normaliser_keeps_paths_and_bytes_as_files_to_upload(tmp_path: Path) -> None:
    data = png()
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    workflow = load(data)
    prompt = to_prompt(workflow)
    assert prompt["1"]["inputs"]["image"] == InputFile(data, content_name(data))
    assert content_name(data).endswith(".png") and prompt["2"]["inputs"]["images"] == ["1", 0]
    assert workflow["1"]["inputs"]["image"] is data  # the caller's dict is untouched
    assert to_prompt(load(path))["1"]["inputs"]["image"] == InputFile(path, "cat.png")
    assert "bytes" in repr(prompt["1"]["inputs"]["image"])  # never the bytes themselves


def test_a_file_anywhere_else_or_missing_is_refused_before_anything_is_sent(
        tmp_path: Path) -> None:
    with pytest.raises(WorkflowFormatError, match="only as a node input's value"):
        to_prompt(load([b"\x89PNG"]))
    with pytest.raises(WorkflowFormatError, match="no such file to upload") as info:
        to_prompt(load(tmp_path / "missing.png"))
    assert "node 1 (LoadImage)" in str(info.value)
    with pytest.raises(WorkflowFormatError, match="not JSON-serialisable"):
        to_prompt(load(object()))


def test_with_uploads_uploads_each_file_once_and_leaves_the_prompt_alone() -> None:
    data = png()
    prompt = to_prompt({**load(data), "3": {"class_type": "LoadImage",
                                            "inputs": {"image": data}}})
    sent: List[InputFile] = []

    def upload(file: InputFile) -> str:
        sent.append(file)
        return "uploaded.png"

    posted = with_uploads(prompt, upload)
    assert len(sent) == 1
    assert posted["1"]["inputs"]["image"] == posted["3"]["inputs"]["image"] == "uploaded.png"
    assert isinstance(prompt["1"]["inputs"]["image"], InputFile)  # may go elsewhere again
    json.dumps(posted)
    plain = to_prompt(load("cat.png"))
    assert with_uploads(plain, upload) is plain


def test_native_run_uploads_bytes_and_paths(
        make_api: Callable[..., ComfyApi], fake_server: FakeComfyUI, tmp_path: Path) -> None:
    api = make_api()
    sent: List[str] = []
    api._transport._session.hooks["response"].append(
        lambda r, *a, **k: sent.append(f"{r.request.method} {r.request.path_url}"))
    data = png()
    name = content_name(data)
    first = api.run_workflow(load(data), timeout=30)
    assert first.images
    assert (fake_server.dirs.input / name).read_bytes() == data
    path = tmp_path / "dog.png"
    path.write_bytes(png())
    second = api.run_workflow(load(path), timeout=30)
    assert (fake_server.dirs.input / "dog.png").read_bytes() == path.read_bytes()
    assert sent.count("POST /upload/image") == 2
    ran = [fake_server.history()[r.prompt_id]["prompt"][2]["1"]["inputs"]["image"]
           for r in (first, second)]
    assert ran == [name, "dog.png"]
