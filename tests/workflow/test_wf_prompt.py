"""The one workflow normaliser (``_workflow.prompt.to_prompt``): every form a user may pass,
integer ids, "almost a workflow" files, inputs added by plain assignment, and the client's
words added to the server's validation errors."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, List

import pytest
import responses

from comfysync import ComfyApi, PromptValidationError, Workflow, WorkflowFormatError
from comfysync._workflow import prompt as prompt_module
from comfysync._workflow.prompt import explain_rejection, prepare, to_prompt

API: Dict[str, Any] = {
    "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                 "color": 0}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}},
}


def _png(chunks: List[bytes]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for body in chunks:
        kind, _, rest = body.partition(b":")
        out += chunk(kind, rest)
    return out + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b"")


def test_integer_node_and_link_ids_become_strings() -> None:
    data = {5: {"class_type": "EmptyImage", "inputs": {"width": 64}},
            9: {"class_type": "SaveImage", "inputs": {"images": [5, 0]}}}
    prompt = to_prompt(data)
    assert list(prompt) == ["5", "9"] and prompt["9"]["inputs"]["images"] == ["5", 0]
    assert Workflow(data)["9"]["inputs"]["images"] == ["5", 0]
    with pytest.raises(WorkflowFormatError, match="same node id twice"):
        to_prompt({5: API["5"], "5": API["5"]})


def test_a_prompt_request_body_is_unwrapped(tmp_path: Path) -> None:
    body = {"prompt": API, "client_id": "abc", "extra_data": {"extra_pnginfo": {}}}
    assert to_prompt(body) == API
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    assert Workflow.load(path) == API


def test_a_comfyui_png_gives_its_embedded_prompt(tmp_path: Path) -> None:
    text = json.dumps(API).encode()
    path = tmp_path / "ComfyUI_00001_.png"
    path.write_bytes(_png([b"tEXt:prompt\0" + text, b"tEXt:workflow\0{}"]))
    assert Workflow.load(path) == API and to_prompt(str(path)) == API
    # iTXt (non-Latin-1 text), compressed
    itxt = tmp_path / "itxt.png"
    itxt.write_bytes(_png([b"iTXt:prompt\0\1\0\0\0" + zlib.compress(text)]))
    assert to_prompt(itxt) == API
    bare = tmp_path / "bare.png"
    bare.write_bytes(_png([]))
    with pytest.raises(WorkflowFormatError, match="PNG without an embedded workflow"):
        Workflow.load(bare)


def test_workflow_reads_and_writes_like_its_dict() -> None:
    wf = Workflow(API)
    wf["5"]["inputs"]["width"] = 128  # ComfyUI's own example style
    assert wf["5"]["class_type"] == "EmptyImage" and wf.get("5.width") == 128
    assert "5" in wf and len(wf) == 2 and "inputs" in wf["5"]
    assert [k for k, _ in wf.items()] == ["5", "9"] and list(wf.keys()) == ["5", "9"]
    assert dict(wf["9"].items()) == API["9"] and wf["9"] == API["9"]
    wf["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    assert wf.to_dict()["10"]["class_type"] == "PreviewImage"
    del wf["10"]
    assert "10" not in wf


def test_an_unknown_input_set_by_any_path_is_caught_before_posting(
    node_defs: Dict[str, Any],
) -> None:
    for assign in (lambda wf: wf["5"]["inputs"].__setitem__("widht", 5),
                   lambda wf: wf["5"].__setitem__("widht", 5),
                   lambda wf: wf["5"].inputs.__setitem__("widht", 5)):
        wf = Workflow(API)
        assign(wf)
        with pytest.raises(WorkflowFormatError,
                           match="node 5 \\(EmptyImage\\): unknown input 'widht' — did you "
                                 "mean 'width'\\?"):
            to_prompt(wf, node_defs)
    # wrapping or copying the workflow does not launder the typo
    wf = Workflow(API)
    wf["5"]["inputs"]["widht"] = 5
    for other in (Workflow(wf), wf.copy()):
        with pytest.raises(WorkflowFormatError, match="unknown input 'widht'"):
            to_prompt(other, node_defs)
    # an input the class has is fine; definitions are asked for only when something was added
    asked: List[int] = []
    wf = Workflow(API)
    assert to_prompt(wf, lambda: asked.append(1) or node_defs) == API and asked == []
    wf["9"]["inputs"]["filename_prefix"] = "y"
    to_prompt(wf, lambda: asked.append(1) or node_defs)
    assert asked == []


def test_validate_suggests_classes_and_inputs(node_defs: Dict[str, Any]) -> None:
    data = json.loads(json.dumps(API))
    data["5"]["inputs"]["widht"] = data["5"]["inputs"].pop("width")
    data["9"]["class_type"] = "saveimage"
    problems = Workflow(data).validate(node_defs)
    assert problems == [
        "node 5 (EmptyImage): unknown input 'widht' — did you mean 'width'?",
        "node 9: Cannot execute because node saveimage does not exist. — Node ID '#9' "
        "(not installed on the server?) — did you mean 'SaveImage'?",
    ]  # and not "Required input is missing — width"
    with pytest.raises(WorkflowFormatError, match="did you mean 'EmptyImage'"):
        ui = {"nodes": [{"id": 1, "type": "emptyimage", "widgets_values": []}], "links": []}
        Workflow.from_ui(ui, node_defs)


def test_server_rejections_get_the_clients_words(node_defs: Dict[str, Any]) -> None:
    prompt = {"2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}}}
    server = PromptValidationError(
        {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed "
         "validation", "details": "Exception when validating node: '99'"},
        {"2": {"errors": [{"type": "exception_during_validation", "message": "Exception when "
                           "validating node", "details": "'99'"}], "class_type": "SaveImage"}},
    )
    explained = explain_rejection(server, prompt)
    assert "input 'images' links to node 99, which is not in the workflow" in str(explained)
    assert explained.node_errors == server.node_errors and explained.hints
    typo = {"1": {"class_type": "EmptyImag", "inputs": {}}}
    unknown = PromptValidationError({"type": "invalid_prompt", "message": "Cannot execute "
                                     "because node EmptyImag does not exist."}, {})
    assert "did you mean 'EmptyImage'" in str(explain_rejection(unknown, typo, node_defs))
    assert explain_rejection(unknown, typo) is unknown  # nothing to add without definitions


def test_the_client_explains_a_rejected_link_end_to_end() -> None:
    recorded = {"error": {"type": "prompt_outputs_failed_validation",
                          "message": "Prompt outputs failed validation",
                          "details": "Exception when validating node: '99'", "extra_info": {}},
                "node_errors": {"2": {"errors": [{"type": "exception_during_validation",
                                                  "message": "Exception when validating node",
                                                  "details": "'99'", "extra_info": {}}],
                                      "dependent_outputs": ["2"], "class_type": "SaveImage"}}}
    with responses.RequestsMock() as mock:
        mock.add("POST", "http://h:8188/prompt", json=recorded, status=400)
        api = ComfyApi("h:8188")
        with pytest.raises(PromptValidationError) as info:
            api.queue_prompt({"2": {"class_type": "SaveImage", "inputs": {"images": [99, 0]}}})
        api.close()
    assert "links to node 99, which is not in the workflow" in str(info.value)


def test_one_check_of_each_kind_per_post(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Workflow handed to queue_prompt passes the UI-format check and the shape check once
    each, and a prepared workflow is not copied again."""
    counts = {"format": 0}
    real = prompt_module.normalise

    def check(data: Any, path: str = "") -> Any:
        counts["format"] += 1
        return real(data, path)

    monkeypatch.setattr(prompt_module, "normalise", check)
    wf = Workflow(API)
    assert counts == {"format": 1}
    with responses.RequestsMock() as mock:
        mock.add("POST", "http://h:8188/prompt",
                 json={"prompt_id": "p", "number": 1, "node_errors": {}})
        api = ComfyApi("h:8188")
        api.queue_prompt(wf)
        api.close()
    assert counts == {"format": 2}
    prepared = prepare(API)
    assert to_prompt(prepared) is prepared.prompt  # no second copy of a prepared workflow


def _modules_entered(call: Any) -> List[str]:
    """The comfysync modules a call enters, in order (a return into a module counts as
    entering it again, as a call into it does)."""
    import sys
    import threading

    seen: List[str] = []
    me = threading.get_ident()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if threading.get_ident() != me or event not in ("call", "return"):
            return
        target = frame if event == "call" else frame.f_back
        module = target.f_globals.get("__name__", "") if target is not None else ""
        if module.startswith("comfysync") and (not seen or seen[-1] != module):
            seen.append(module)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen


def test_a_workflow_visits_each_module_at_most_twice(tmp_path: Path) -> None:
    """From to_prompt to the ready prompt, a workflow moves down the workflow layer and back
    up: no module is entered more than twice (JSON copy, checks and id normalisation happen
    in one visit of _workflow.format)."""
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(API))
    wf = Workflow(API)
    for form in (wf, API, path):
        seen = _modules_entered(lambda form=form: to_prompt(form))
        counts = {m: seen.count(m) for m in seen}
        assert max(counts.values()) <= 2, seen
        assert seen[:3] == ["comfysync._workflow.prompt", "comfysync._workflow.format",
                            "comfysync._workflow.prompt"], seen
