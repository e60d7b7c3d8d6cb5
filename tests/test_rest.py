"""Every REST method: the request it sends (with and without a path prefix) and how it parses
the real answers recorded from ComfyUI v0.3.64."""

from __future__ import annotations

import base64
import inspect
import io
import json
import logging
import re
import uuid
from email.parser import BytesParser
from email.policy import default as email_policy
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from _recordings import exchanges, find, node_defs

import comfysync
from comfysync import ComfyApi
from comfysync._rest.base import RestBase
from comfysync._rest.files import FileInput, FileRoutes
from comfysync._rest.methods import RestMethods
from comfysync._rest.models import FileRef, HistoryEntry, NodeDef, QueuedPrompt, QueueState
from comfysync._rest.server import ServerRoutes
from comfysync._rest.user import UserRoutes
from comfysync._workflow.prompt import to_prompt as to_api_prompt
from comfysync.errors import (
    ComfyConnectionError,
    ComfyHTTPError,
    ComfyTimeoutError,
    PromptValidationError,
    UnsafePathError,
    WorkflowFormatError,
)

BASES = ["http://h:8188", "https://proxy.example/comfy"]
CLIENT_ID = "cid-0001"
_UNSET: Any = object()
REST_MISC = exchanges("rest_misc")

API_PROMPT: Dict[str, Any] = {
    "1": {"class_type": "EmptyImage",
          "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "rec"}},
}


class Harness:
    """A ComfyApi against a mocked server at ``base`` plus request assertions."""

    def __init__(self, api: ComfyApi, mock: responses.RequestsMock, base: str) -> None:
        self.api, self.mock, self.base = api, mock, base

    def expect(self, method: str, path: str, *, status: int = 200, json: Any = _UNSET,
               body: Any = "", content_type: Optional[str] = None) -> None:
        kwargs: Dict[str, Any] = {"status": status}
        if json is not _UNSET:
            kwargs["json"] = json
        else:
            kwargs["body"] = body
        if content_type:
            kwargs["content_type"] = content_type
        self.mock.add(method, self.base + path, **kwargs)

    def replay(self, method: str, path: str, nth: int = 0) -> Any:
        """Register the recorded answer of ``method path`` and return its body."""
        ex = find(REST_MISC, method, path, nth)
        body = ex["body"]
        if isinstance(body, dict) and set(body) == {"bytes", "head_hex"}:
            self.expect(method, path.split("?")[0], status=ex["status"], body="")
        else:
            self.expect(method, path.split("?")[0], status=ex["status"], json=body)
        return body

    def request(self, index: int = -1) -> requests.PreparedRequest:
        return self.mock.calls[index].request

    def check(self, method: str, path: str, query: Optional[Dict[str, str]] = None,
              json: Any = _UNSET, index: int = -1) -> requests.PreparedRequest:
        req = self.request(index)
        parts = urlsplit(req.url or "")
        assert req.method == method
        assert f"{parts.scheme}://{parts.netloc}" + parts.path == self.base + path
        got_query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        assert got_query == (query or {})
        if json is not _UNSET:
            assert req.headers.get("Content-Type") == "application/json"
            assert _json_body(req) == json
        return req


def _json_body(req: requests.PreparedRequest) -> Any:
    body = req.body
    assert body is not None
    return json.loads(body if isinstance(body, (str, bytes)) else bytes(body))


@pytest.fixture(params=BASES, ids=["plain", "prefixed"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with responses.RequestsMock() as mock:
        api = ComfyApi(request.param, client_id=CLIENT_ID)
        yield Harness(api, mock, request.param)
        api.close()


@pytest.mark.parametrize("bad", [None, ""])
def test_empty_or_none_ids_are_refused_before_any_request(h: Harness, bad: object) -> None:
    with pytest.raises(ValueError, match="non-empty id"):
        h.api.get_history(bad)  # type: ignore[arg-type]
    assert len(h.mock.calls) == 0


# -- prompts -----------------------------------------------------------------------------------


def _queued_body(prompt_id: str, number: float = 4) -> Dict[str, Any]:
    return {"prompt_id": prompt_id, "number": number, "node_errors": {}}


def test_queue_prompt_sends_client_id_and_a_uuid4_prompt_id(h: Harness) -> None:
    def answer(req: requests.PreparedRequest) -> Tuple[int, Dict[str, str], str]:
        sent = _json_body(req)
        return (200, {}, json.dumps(_queued_body(sent["prompt_id"])))

    h.mock.add_callback("POST", h.base + "/prompt", callback=answer,
                        content_type="application/json")
    queued = h.api.queue_prompt(API_PROMPT)
    sent = _json_body(h.check("POST", "/prompt"))
    assert sent["prompt"] == API_PROMPT and sent["client_id"] == CLIENT_ID
    assert str(uuid.UUID(sent["prompt_id"], version=4)) == sent["prompt_id"]
    assert "front" not in sent and "number" not in sent and "extra_data" not in sent
    assert isinstance(queued, QueuedPrompt) and queued.prompt_id == sent["prompt_id"]
    assert queued.number == 4


def test_queue_prompt_options(h: Harness) -> None:
    h.expect("POST", "/prompt", json=_queued_body("my-id", 7.0))
    h.expect("POST", "/prompt", json=_queued_body("x", -3))
    queued = h.api.queue_prompt(API_PROMPT, prompt_id="my-id", number=7,
                                extra_data={"extra_pnginfo": {"workflow": {"id": "wf"}}})
    assert queued.number == 7.0
    assert _json_body(h.request(0)) == {
        "prompt": API_PROMPT, "client_id": CLIENT_ID, "prompt_id": "my-id", "number": 7,
        "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf"}}}}
    h.api.queue_prompt(API_PROMPT, prompt_id="x", front=True)
    assert _json_body(h.request(1))["front"] is True


def test_queue_prompt_accepts_path_and_to_dict(h: Harness, tmp_path: Path) -> None:
    h.expect("POST", "/prompt", json=_queued_body("a"))
    h.expect("POST", "/prompt", json=_queued_body("b"))
    h.expect("POST", "/prompt", json=_queued_body("c"))
    path = tmp_path / "wf_api.json"
    path.write_text(json.dumps(API_PROMPT), encoding="utf-8")

    class WorkflowLike:
        def to_dict(self) -> Dict[str, Any]:
            return API_PROMPT

    h.api.queue_prompt(path, prompt_id="a")
    h.api.queue_prompt(str(path), prompt_id="b")
    h.api.queue_prompt(WorkflowLike(), prompt_id="c")
    assert [_json_body(c.request)["prompt"] for c in h.mock.calls] == [API_PROMPT] * 3


def test_real_recorded_submission_is_reproduced(h: Harness) -> None:
    ex = find(exchanges("run_progress_preview_metadata"), "POST", "/prompt")
    recorded = ex["request"]["json"]
    h.expect("POST", "/prompt", json=ex["body"])
    api = ComfyApi(h.base, client_id=recorded["client_id"])
    queued = api.queue_prompt(recorded["prompt"], prompt_id=recorded["prompt_id"])
    api.close()
    assert _json_body(h.request()) == recorded
    assert queued.prompt_id == recorded["prompt_id"] == ex["body"]["prompt_id"]


def test_ui_format_is_converted_never_posted_raw(h: Harness, tmp_path: Path) -> None:
    """queue_prompt goes through the one normaliser like submit: a UI-format workflow is
    converted with the server's node definitions (read once), and one that cannot be
    converted is refused before POST /prompt."""
    ui = {"last_node_id": 3, "nodes": [], "links": [], "version": 0.4}
    h.expect("GET", "/object_info", json={"SaveImage": {"input": {}, "output_node": True}})
    with pytest.raises(WorkflowFormatError, match="no node to run"):
        h.api.queue_prompt(ui)
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(ui))
    with pytest.raises(WorkflowFormatError, match="no node to run"):
        h.api.queue_prompt(path)
    assert [c.request.method for c in h.mock.calls] == ["GET"]


@pytest.mark.parametrize(
    "content, words",
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ("{}", "no nodes"),
     ('{"1": {"inputs": {}}}', "node 1 in "),
     ('{"1": {"inputs": {}}}', "is missing the class_type property"),
     ('{"1": {"class_type": "X", "inputs": [1]}}', "(X) in "),
     ('{"1": {"class_type": "X", "inputs": [1]}}', "inputs must be an object")],
)
def test_bad_workflow_files_refused(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(WorkflowFormatError) as info:
        to_api_prompt(path)
    assert words in str(info.value) and "broken.json" in str(info.value)


@pytest.mark.parametrize("bad", [
    {"1": 3},
    {"1": {"inputs": {}}},
    {"1": {"class_type": ["X"], "inputs": {}}},
    {"1": {"class_type": "X", "inputs": [1]}},
])
def test_to_api_prompt_checks_nodes_like_workflow(bad: Dict[str, Any]) -> None:
    """One per-node check (``_format.check_api_shape``): the same words for the same mistake,
    whether the dict is submitted or wrapped in a Workflow first."""
    from comfysync import Workflow
    from comfysync._workflow.format import check_api_shape

    with pytest.raises(WorkflowFormatError) as submitted:
        to_api_prompt(bad)
    with pytest.raises(WorkflowFormatError) as checked:
        check_api_shape(bad)
    with pytest.raises(WorkflowFormatError) as wrapped:
        Workflow(bad)
    assert str(submitted.value) == str(checked.value) == str(wrapped.value)


def test_to_api_prompt_other_inputs(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFormatError, match="not found"):
        to_api_prompt(tmp_path / "missing.json")
    with pytest.raises(WorkflowFormatError, match="not int"):
        to_api_prompt(42)
    with pytest.raises(WorkflowFormatError, match="JSON-serialisable"):
        to_api_prompt({"1": {"class_type": "X", "inputs": {"v": object()}}})
    src = {"1": {"class_type": "X", "inputs": {"v": {"__value__": [1, 2]}}}}
    copy = to_api_prompt(src)
    copy["1"]["inputs"]["v"]["__value__"].append(3)
    assert src["1"]["inputs"]["v"] == {"__value__": [1, 2]}
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(src).encode())
    assert to_api_prompt(bom) == src


VALIDATION = [e for e in exchanges("submit_validation_errors") if e["status"] == 400]


@pytest.mark.parametrize("ex", VALIDATION, ids=[e["body"]["error"]["type"] for e in VALIDATION])
def test_real_400_bodies_become_prompt_validation_error(h: Harness, ex: Dict[str, Any]) -> None:
    h.expect("POST", "/prompt", status=400, json=ex["body"])
    prompt = ex["request"]["json"].get("prompt") or API_PROMPT
    with pytest.raises(PromptValidationError) as info:
        h.api.queue_prompt(prompt)
    err = info.value
    assert err.status == 400 and err.url == h.base + "/prompt" and err.body == ex["body"]
    assert err.error == ex["body"]["error"] and err.node_errors == ex["body"]["node_errors"]
    assert err.error_type == ex["body"]["error"]["type"]
    assert isinstance(err, ComfyHTTPError)
    assert str(err).startswith(ex["body"]["error"]["message"])


def test_validation_message_lists_each_node_error(h: Harness) -> None:
    ex = VALIDATION[1]
    h.expect("POST", "/prompt", status=400, json=ex["body"])
    with pytest.raises(PromptValidationError) as info:
        h.api.queue_prompt(ex["request"]["json"]["prompt"])
    lines = str(info.value).splitlines()
    assert lines == [
        "Prompt outputs failed validation:",
        "  node 1 (EmptyImage): Failed to convert an input value to a INT value — width, wide, "
        "invalid literal for int() with base 10: 'wide'",
        "  node 1 (EmptyImage): Required input is missing — color",
        "  node 1 (EmptyImage): Value 999999 bigger than max of 16384 — height",
    ]


def test_invalid_prompt_message_includes_details(h: Harness) -> None:
    ex = VALIDATION[0]
    h.expect("POST", "/prompt", status=400, json=ex["body"])
    with pytest.raises(PromptValidationError) as info:
        h.api.queue_prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert str(info.value) == ("Cannot execute because node NoSuchNode does not exist. — "
                               "Node ID '#1'")


def test_real_plain_text_500_on_submit(h: Harness) -> None:
    ex = [e for e in exchanges("submit_validation_errors") if e["status"] == 500][0]
    h.expect("POST", "/prompt", status=500, body=ex["body"], content_type="text/plain")
    with pytest.raises(ComfyHTTPError) as info:
        h.api.queue_prompt(API_PROMPT)
    assert not isinstance(info.value, PromptValidationError)
    assert info.value.status == 500 and info.value.body == ex["body"]
    assert "Server got itself in trouble" in str(info.value)


def test_400_without_validation_body_stays_http_error(h: Harness) -> None:
    h.expect("POST", "/prompt", status=400, body="bad", content_type="text/plain")
    with pytest.raises(ComfyHTTPError) as info:
        h.api.queue_prompt(API_PROMPT)
    assert type(info.value) is ComfyHTTPError


def test_200_with_node_errors_is_visible_and_logged(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    node_errors = {"2": {"errors": [{"type": "required_input_missing",
                                     "message": "Required input is missing", "details": "tag",
                                     "extra_info": {"input_name": "tag"}}],
                         "dependent_outputs": ["2"], "class_type": "ProtoSleep"}}
    h.expect("POST", "/prompt", json={"prompt_id": "p", "number": 18, "node_errors": node_errors})
    with caplog.at_level(logging.WARNING, logger="comfysync"):
        queued = h.api.queue_prompt(API_PROMPT, prompt_id="p")
    assert queued.node_errors == node_errors and queued.has_node_errors
    assert "node 2 (ProtoSleep): Required input is missing — tag" in caplog.text


def test_post_prompt_for_the_tracking_layer(h: Harness) -> None:
    h.expect("POST", "/prompt", json=_queued_body("fixed"))
    prompt = to_api_prompt(API_PROMPT)
    h.api._post_prompt(prompt, "fixed", partial_execution_targets=["2"])
    assert _json_body(h.request()) == {"prompt": API_PROMPT, "client_id": CLIENT_ID,
                                       "prompt_id": "fixed", "partial_execution_targets": ["2"]}


# -- queue, history, interrupt, free -----------------------------------------------------------


def test_queue_routes(h: Harness) -> None:
    ex = find(exchanges("run_interrupted"), "GET", "/queue")
    h.expect("GET", "/queue", json=ex["body"])
    state = h.api.get_queue()
    h.check("GET", "/queue")
    assert isinstance(state, QueueState) and state.remaining == 2
    h.replay("GET", "/prompt")
    assert h.api.get_queue_remaining() == 0
    h.check("GET", "/prompt")
    h.expect("POST", "/queue")
    h.expect("POST", "/queue")
    h.expect("POST", "/queue")
    assert h.api.delete_from_queue(["a", "b"]) is None
    h.check("POST", "/queue", json={"delete": ["a", "b"]})
    h.api.delete_from_queue("a")
    h.check("POST", "/queue", json={"delete": ["a"]})
    h.api.clear_queue()
    h.check("POST", "/queue", json={"clear": True})


def test_interrupt_and_free(h: Harness) -> None:
    for _ in range(4):
        h.expect("POST", "/interrupt" if _ < 2 else "/free")
    h.api.interrupt()
    h.check("POST", "/interrupt", json={})
    h.api.interrupt("3787f991")
    h.check("POST", "/interrupt", json={"prompt_id": "3787f991"})
    h.api.free(unload_models=True, free_memory=True)
    h.check("POST", "/free", json=find(REST_MISC, "POST", "/free")["request"]["json"])
    h.api.free()
    h.check("POST", "/free", json={"unload_models": False, "free_memory": False})


def test_history_routes(h: Harness) -> None:
    pid = "0ef0dc42-800b-446d-805b-0a185be18843"
    ex = find(exchanges("run_execution_error"), "GET", f"/history/{pid}")
    h.expect("GET", f"/history/{pid}", json=ex["body"])
    entry = h.api.get_history(pid)
    h.check("GET", f"/history/{pid}")
    assert isinstance(entry, HistoryEntry) and entry.failed
    missing = find(exchanges("run_interrupted"), "GET",
                   "/history/1323bf41-073d-421d-8bca-374e74d972d0")
    h.expect("GET", "/history/1323bf41-073d-421d-8bca-374e74d972d0", json=missing["body"])
    assert h.api.get_history("1323bf41-073d-421d-8bca-374e74d972d0") is None
    h.replay("GET", "/history?max_items=2")
    assert h.api.get_histories(max_items=2) == {}
    h.check("GET", "/history", query={"max_items": "2"})
    h.expect("GET", "/history", json=ex["body"])
    entries = h.api.get_histories(max_items=5, offset=1)
    h.check("GET", "/history", query={"max_items": "5", "offset": "1"})
    assert list(entries) == [pid] and entries[pid].prompt_id == pid
    h.expect("GET", "/history", json={})
    h.api.get_histories()
    h.check("GET", "/history")
    h.expect("POST", "/history")
    h.expect("POST", "/history")
    h.api.delete_history("no-such-id")
    h.check("POST", "/history", json=find(REST_MISC, "POST", "/history")["request"]["json"])
    h.api.clear_history()
    h.check("POST", "/history", json={"clear": True})


def test_history_id_is_one_path_segment(h: Harness) -> None:
    h.expect("GET", "/history/a%2Fb%3Fc", json={})
    assert h.api.get_history("a/b?c") is None
    assert h.request().path_url.endswith("/history/a%2Fb%3Fc")


# -- discovery ---------------------------------------------------------------------------------


def test_system_and_small_lists(h: Harness) -> None:
    h.replay("GET", "/system_stats")
    assert h.api.get_system_stats().comfyui_version == "0.3.64"
    h.check("GET", "/system_stats")
    features = h.replay("GET", "/features")
    assert h.api.get_features() == features
    h.replay("GET", "/embeddings")
    assert h.api.get_embeddings() == []
    ext = h.replay("GET", "/extensions")
    assert h.api.get_extensions() == ext
    folders = h.replay("GET", "/models")
    assert h.api.get_model_folders() == folders and "checkpoints" in folders
    h.replay("GET", "/models/loras")
    assert h.api.get_models("loras") == []
    h.check("GET", "/models/loras")


def test_node_defs(h: Harness) -> None:
    h.replay("GET", "/object_info/EmptyImage")
    defs = h.api.get_node_defs("EmptyImage")
    h.check("GET", "/object_info/EmptyImage")
    assert list(defs) == ["EmptyImage"] and isinstance(defs["EmptyImage"], NodeDef)
    h.replay("GET", "/object_info/NoSuchNode")
    assert h.api.get_node_defs("NoSuchNode") == {}
    assert h.api.get_node_def("NoSuchNode") is None
    h.expect("GET", "/object_info", json=node_defs())
    every = h.api.get_node_defs()
    h.check("GET", "/object_info")
    assert set(every) == set(node_defs()) and every["SaveImage"].output_node


def test_derived_lists(h: Harness) -> None:
    defs = node_defs()
    ckpt = json.loads(json.dumps(defs["CheckpointLoaderSimple"]))
    ckpt["input"]["required"]["ckpt_name"][0] = ["sd15.safetensors", "xl/base.safetensors"]
    h.expect("GET", "/object_info/CheckpointLoaderSimple", json={"CheckpointLoaderSimple": ckpt})
    assert h.api.get_checkpoints() == ["sd15.safetensors", "xl/base.safetensors"]
    h.check("GET", "/object_info/CheckpointLoaderSimple")
    h.expect("GET", "/object_info/LoraLoader", json={"LoraLoader": defs["LoraLoader"]})
    assert h.api.get_loras() == []
    h.check("GET", "/object_info/LoraLoader")
    ks = h.replay("GET", "/object_info/KSampler")
    info = h.api.get_sampler_info()
    assert info.samplers == ks["KSampler"]["input"]["required"]["sampler_name"][0]
    assert "karras" in info.schedulers
    h.expect("GET", "/object_info/KSampler", json={})
    assert h.api.get_sampler_info().samplers == []


# -- files -------------------------------------------------------------------------------------


def _multipart(req: requests.PreparedRequest) -> Dict[str, Tuple[Optional[str], bytes]]:
    body = req.body
    assert isinstance(body, bytes)
    head = f"Content-Type: {req.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=email_policy).parsebytes(head + body)
    parts: Dict[str, Tuple[Optional[str], bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return parts


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"rest-of-png"


def test_upload_image_from_path(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "rec_upload.png"
    src.write_bytes(PNG)
    h.replay("POST", "/upload/image")
    ref = h.api.upload_image(src, subfolder="sdk")
    h.check("POST", "/upload/image")
    parts = _multipart(h.request())
    assert parts["image"] == ("rec_upload.png", PNG)
    assert parts["type"] == (None, b"input") and parts["subfolder"] == (None, b"sdk")
    assert parts["overwrite"] == (None, b"false") and "original_ref" not in parts
    assert ref == FileRef("rec_upload.png", "sdk", "input")


def test_upload_image_from_bytes_and_file_object(h: Harness) -> None:
    h.expect("POST", "/upload/image", json={"name": "pt (1).png", "subfolder": "", "type": "temp"})
    h.expect("POST", "/upload/image", json={"name": "f.png", "subfolder": "", "type": "input"})
    ref = h.api.upload_image(PNG, filename="pt.png", type="temp", overwrite=True)
    assert ref == FileRef("pt (1).png", "", "temp")  # the name the server chose
    parts = _multipart(h.request())
    assert parts["image"] == ("pt.png", PNG) and parts["overwrite"] == (None, b"true")
    assert parts["type"] == (None, b"temp")
    fileobj = io.BytesIO(PNG)
    fileobj.name = "/some/dir/f.png"
    h.api.upload_image(fileobj)
    assert _multipart(h.request())["image"] == ("f.png", PNG)


def test_upload_argument_errors(h: Harness) -> None:
    with pytest.raises(ValueError, match="filename="):
        h.api.upload_image(PNG)
    with pytest.raises(ValueError, match="filename="):
        h.api.upload_image(io.BytesIO(PNG))
    with pytest.raises(TypeError):
        h.api.upload_image(12)  # type: ignore[arg-type]
    assert len(h.mock.calls) == 0


def test_upload_mask_sends_original_ref_json(h: Harness) -> None:
    h.replay("POST", "/upload/mask")
    original = FileRef("rec_upload.png", "sdk", "input")
    ref = h.api.upload_mask(PNG, filename="rec_mask.png", original_ref=original, subfolder="sdk")
    h.check("POST", "/upload/mask")
    parts = _multipart(h.request())
    assert json.loads(parts["original_ref"][1]) == {
        "filename": "rec_upload.png", "subfolder": "sdk", "type": "input"}
    assert parts["image"] == ("rec_mask.png", PNG)
    assert ref == FileRef("rec_mask.png", "sdk", "input")
    h.expect("POST", "/upload/mask", json={"name": "m.png", "subfolder": "", "type": "input"})
    h.api.upload_mask(PNG, filename="m.png", original_ref={"filename": "o.png"})
    assert json.loads(_multipart(h.request())["original_ref"][1])["type"] == "output"


def test_get_image_and_url(h: Harness) -> None:
    h.expect("GET", "/view", body=PNG, content_type="image/png")
    ref = FileRef("rec_upload.png", "sdk", "input")
    assert h.api.get_image(ref) == PNG
    h.check("GET", "/view", query=find(REST_MISC, "GET", "/view")["request"]["params"])
    h.expect("GET", "/view", body=b"jpeg")
    h.api.get_image({"filename": "a b&c.png", "type": "temp"}, preview="jpeg;80", channel="rgb")
    h.check("GET", "/view", query={"filename": "a b&c.png", "subfolder": "", "type": "temp",
                                   "preview": "jpeg;80", "channel": "rgb"})
    assert h.api.get_path_image(ref) == (
        h.base + "/view?filename=rec_upload.png&subfolder=sdk&type=input")
    assert h.api.get_path_image("x y.png") == (
        h.base + "/view?filename=x+y.png&subfolder=&type=output")


def test_get_image_accepts_output_file_like_objects(h: Harness) -> None:
    class Out:
        filename, subfolder, type = "big_00001_.png", "sdk", "output"

    h.expect("GET", "/view", body=PNG)
    assert h.api.get_image(Out()) == PNG
    h.check("GET", "/view", query={"filename": "big_00001_.png", "subfolder": "sdk",
                                   "type": "output"})
    with pytest.raises(TypeError):
        h.api.get_image(3.5)


def test_view_errors_recorded(h: Harness) -> None:
    cases = [(("../../etc/passwd", "input"), 400), (("nope.png", "output"), 404)]
    for (name, kind), status in cases:
        recorded = find(REST_MISC, "GET", "/view", status=status)["request"]["params"]
        assert recorded["filename"] == name
        h.expect("GET", "/view", status=status, body="")
        with pytest.raises(ComfyHTTPError) as info:
            h.api.get_image(FileRef(name, "", kind))
        assert info.value.status == status and "/view?filename=" in info.value.url


def test_download_streams_to_directory(h: Harness, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    h.expect("GET", "/view", body=data, content_type="image/png")
    written = h.api.download(FileRef("big_00001_.png", "sdk", "output"), tmp_path, chunk_size=1000)
    assert written == tmp_path.resolve() / "big_00001_.png"
    assert written.read_bytes() == data
    assert h.request().req_kwargs["stream"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big_00001_.png"]


def test_download_to_file_path_and_new_directory(h: Harness, tmp_path: Path) -> None:
    h.expect("GET", "/view", body=PNG)
    h.expect("GET", "/view", body=PNG)
    target = tmp_path / "sub" / "renamed.png"
    assert h.api.download("x.png", target) == target and target.read_bytes() == PNG
    new_dir = str(tmp_path / "newdir") + "/"
    written = h.api.download("../x.png", new_dir)
    assert written == (tmp_path / "newdir" / "x.png").resolve() and written.read_bytes() == PNG


def test_download_to_a_suffixless_new_path_makes_a_directory(h: Harness, tmp_path: Path) -> None:
    """Same rule as OutputFile.save: "out" (no suffix) is a directory, created on demand."""
    h.expect("GET", "/view", body=PNG)
    written = h.api.download(FileRef("ComfyUI_00001_.png", "", "output"), tmp_path / "out")
    assert written == (tmp_path / "out" / "ComfyUI_00001_.png").resolve()
    assert written.read_bytes() == PNG


@pytest.mark.parametrize(
    "hostile, saved_as",
    [("../../x", "x"), ("/etc/passwd", "passwd"), ("a/../../b", "b"),
     ("..\\..\\win.png", "win.png"), ("C:evil.png", "evil.png")],
)
def test_download_hostile_names_stay_inside(
    h: Harness, tmp_path: Path, hostile: str, saved_as: str
) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    h.expect("GET", "/view", body=PNG)
    written = h.api.download(FileRef(hostile, "", "output"), inner)
    assert written == inner.resolve() / saved_as
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [saved_as]
    assert h.check("GET", "/view", query={"filename": hostile, "subfolder": "",
                                          "type": "output"})


@pytest.mark.parametrize("hostile", ["..", "", ".", "a/..", "x\x00y"])
def test_download_unusable_names_refused_before_request(
    h: Harness, tmp_path: Path, hostile: str
) -> None:
    with pytest.raises(UnsafePathError):
        h.api.download(FileRef(hostile) if hostile else {"filename": "/"}, tmp_path)
    assert len(h.mock.calls) == 0 and list(tmp_path.iterdir()) == []


def test_download_into_an_unwritable_place_names_the_target_and_releases_the_response(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import comfysync._rest.saving as files_module

    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(13, "Permission denied", path)

    responses_seen: List[requests.Response] = []
    real_request = h.api._transport.request

    def request(*args: Any, **kwargs: Any) -> requests.Response:
        response = real_request(*args, **kwargs)
        responses_seen.append(response)
        return response

    monkeypatch.setattr(h.api._transport, "request", request)
    monkeypatch.setattr(files_module.os, "open", refuse)
    h.expect("GET", "/view", body=PNG)
    with pytest.raises(PermissionError) as info:
        h.api.download("ComfyUI_00008_.png", tmp_path)
    assert info.value.filename == str(tmp_path.resolve() / "ComfyUI_00008_.png")
    assert ".part" not in str(info.value)
    (response,) = responses_seen
    assert response.raw is not None and response.raw.closed  # not left to the GC


def test_download_error_leaves_nothing(h: Harness, tmp_path: Path) -> None:
    h.expect("GET", "/view", status=404, body="")
    with pytest.raises(ComfyHTTPError):
        h.api.download("nope.png", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_view_metadata(h: Harness) -> None:
    h.expect("GET", "/view_metadata/checkpoints", json={"modelspec.title": "x"})
    assert h.api.get_view_metadata("checkpoints", "m.safetensors") == {"modelspec.title": "x"}
    h.check("GET", "/view_metadata/checkpoints", query={"filename": "m.safetensors"})
    h.expect("GET", "/view_metadata/loras", status=404, body="")
    assert h.api.get_view_metadata("loras", "none.safetensors") is None
    h.expect("GET", "/view_metadata/loras", status=500, body="boom")
    with pytest.raises(ComfyHTTPError):
        h.api.get_view_metadata("loras", "x")


# -- users, settings, userdata, logs -----------------------------------------------------------


def test_users_and_settings(h: Harness) -> None:
    users = h.replay("GET", "/users")
    assert h.api.get_users() == users
    h.expect("POST", "/users", json="alice_1234")
    assert h.api.create_user("alice") == "alice_1234"
    h.check("POST", "/users", json={"username": "alice"})
    h.expect("POST", "/users", status=400, json={"error": "Duplicate username."})
    with pytest.raises(ComfyHTTPError, match="Duplicate username"):
        h.api.create_user("alice")
    h.replay("GET", "/settings")
    assert h.api.get_settings() == {}
    h.replay("GET", "/settings/Comfy.Locale")
    assert h.api.get_setting("Comfy.Locale") is None
    h.check("GET", "/settings/Comfy.Locale")
    h.replay("POST", "/settings/Comfy.SDKProbe")
    assert h.api.store_setting("Comfy.SDKProbe", "x") is None
    h.check("POST", "/settings/Comfy.SDKProbe", json="x")
    h.replay("GET", "/settings/Comfy.SDKProbe")
    assert h.api.get_setting("Comfy.SDKProbe") == "x"
    h.expect("POST", "/settings")
    h.api.store_settings({"Comfy.A": 1, "Comfy.B": [True]})
    h.check("POST", "/settings", json={"Comfy.A": 1, "Comfy.B": [True]})


def test_userdata_routes_encode_slashes(h: Harness) -> None:
    h.replay("POST", "/userdata/sdk_test%2Fnote.json")
    assert h.api.store_user_data("sdk_test/note.json", {"a": 1}) == "sdk_test/note.json"
    req = h.check("POST", "/userdata/sdk_test%2Fnote.json")
    assert req.body == b'{"a": 1}'
    h.expect("POST", "/userdata/n.txt", json={"path": "n.txt", "size": 2})
    h.api.store_user_data("n.txt", "hé", overwrite=False, full_info=True)
    req = h.check("POST", "/userdata/n.txt", query={"overwrite": "false", "full_info": "true"})
    assert req.body == "hé".encode()
    h.expect("POST", "/userdata/b.bin", json="b.bin")
    h.api.store_user_data("b.bin", b"\x00\x01")
    assert h.request().body == b"\x00\x01"
    h.expect("GET", "/userdata/sdk_test%2Fnote.json", body=b'{"a": 1}',
             content_type="application/json")
    assert h.api.get_user_data("sdk_test/note.json") == b'{"a": 1}'
    h.check("GET", "/userdata/sdk_test%2Fnote.json")
    listing = h.replay("GET", "/userdata?dir=sdk_test")
    assert h.api.list_user_data("sdk_test") == listing
    h.check("GET", "/userdata", query={"dir": "sdk_test"})
    h.expect("GET", "/userdata", json=[["sub/b.json", "sub", "b.json"]])
    h.api.list_user_data("workflows", recurse=True, split=True)
    h.check("GET", "/userdata", query={"dir": "workflows", "recurse": "true", "split": "true"})
    h.replay("POST", "/userdata/sdk_test%2Fnote.json/move/sdk_test%2Fnote2.json")
    assert h.api.move_user_data("sdk_test/note.json", "sdk_test/note2.json") == (
        "sdk_test/note2.json")
    h.check("POST", "/userdata/sdk_test%2Fnote.json/move/sdk_test%2Fnote2.json",
            query={"overwrite": "false"})
    h.replay("DELETE", "/userdata/sdk_test%2Fnote2.json")
    assert h.api.delete_user_data("sdk_test/note2.json") is None
    h.check("DELETE", "/userdata/sdk_test%2Fnote2.json")


def test_userdata_missing_directory_is_http_error(h: Harness) -> None:
    h.replay("GET", "/userdata?dir=workflows")
    with pytest.raises(ComfyHTTPError) as info:
        h.api.list_user_data("workflows")
    assert info.value.status == 404 and info.value.body == "Directory not found"


def test_logs_use_internal_route(h: Harness) -> None:
    h.expect("GET", "/internal/logs", json="2026-01-01T00:00:00 - Starting server\n")
    assert h.api.get_logs().endswith("Starting server\n")
    h.check("GET", "/internal/logs")


# -- jobs API ----------------------------------------------------------------------------------


def test_jobs_routes(h: Harness) -> None:
    page = {"jobs": [{"id": "p1", "status": "pending"}],
            "pagination": {"offset": 0, "limit": 10, "total": 1, "has_more": False}}
    h.expect("GET", "/api/jobs", json=page)
    assert h.api.get_jobs(status=["pending", "in_progress"], limit=10, offset=0) == page
    h.check("GET", "/api/jobs", query={"status": "pending,in_progress", "limit": "10",
                                       "offset": "0"})
    h.expect("GET", "/api/jobs", json=page)
    h.api.get_jobs("completed", sort_by="created_at", sort_order="desc", workflow_id="wf")
    h.check("GET", "/api/jobs", query={"status": "completed", "sort_by": "created_at",
                                       "sort_order": "desc", "workflow_id": "wf"})
    h.expect("GET", "/api/jobs/p1", json={"id": "p1", "status": "completed", "outputs": {}})
    assert h.api.get_job("p1")["status"] == "completed"
    h.check("GET", "/api/jobs/p1")
    h.expect("POST", "/api/jobs/cancel", json={"cancelled": True})
    assert h.api.cancel_jobs(["p1", "p2"]) is True
    h.check("POST", "/api/jobs/cancel", json={"job_ids": ["p1", "p2"]})
    h.expect("POST", "/api/jobs/p1/cancel", json={"cancelled": False})
    assert h.api.cancel_job("p1") is False
    h.check("POST", "/api/jobs/p1/cancel")


def test_jobs_api_missing_on_old_server(h: Harness) -> None:
    h.expect("GET", "/api/jobs", status=404, body="404: Not Found", content_type="text/plain")
    with pytest.raises(ComfyHTTPError) as info:
        h.api.get_jobs()
    assert info.value.status == 404 and "no jobs API" in str(info.value)
    h.expect("POST", "/api/jobs/cancel", status=404, body="")
    with pytest.raises(ComfyHTTPError, match="no jobs API"):
        h.api.cancel_jobs("p1")


def test_unknown_job_keeps_server_message(h: Harness) -> None:
    h.expect("GET", "/api/jobs/zz", status=404, json={"error": "Job not found"})
    with pytest.raises(ComfyHTTPError) as info:
        h.api.get_job("zz")
    assert "Job not found" in str(info.value) and "no jobs API" not in str(info.value)


# -- ping, odd answers, transport errors through the client ------------------------------------


def test_ping(h: Harness) -> None:
    h.replay("GET", "/prompt")
    rtt = h.api.ping()
    assert isinstance(rtt, float) and 0 <= rtt < 5
    h.check("GET", "/prompt")


def test_ping_raises_when_unreachable() -> None:
    with responses.RequestsMock() as mock:
        mock.get("http://h:8188/prompt", body=requests.exceptions.ConnectionError("refused"))
        api = ComfyApi("h")
        with pytest.raises(ComfyConnectionError):
            api.ping()
        mock.get("http://h:8188/queue", body=requests.exceptions.ReadTimeout("slow"))
        with pytest.raises(ComfyTimeoutError):
            api.get_queue()
        api.close()


@pytest.mark.parametrize(
    "call, path, body",
    [(lambda a: a.get_queue(), "/queue", {"queue_running": "x"}),
     (lambda a: a.get_queue_remaining(), "/prompt", {"exec_info": {}}),
     (lambda a: a.get_embeddings(), "/embeddings", {"not": "a list"}),
     (lambda a: a.get_features(), "/features", ["x"]),
     (lambda a: a.get_logs(), "/internal/logs", ["x"]),
     (lambda a: a.get_history("p"), "/history/p", {"p": ["x"]})],
)
def test_unexpected_answer_shapes_become_http_errors(h: Harness, call: Any, path: str,
                                                     body: Any) -> None:
    h.expect("GET", path, json=body)
    with pytest.raises(ComfyHTTPError, match="unexpected answer"):
        call(h.api)


@pytest.mark.parametrize(
    "call, method, path, body",
    [(lambda a: a.get_jobs(), "GET", "/api/jobs", ["x"]),
     (lambda a: a.get_job("j"), "GET", "/api/jobs/j", "x"),
     (lambda a: a.cancel_job("j"), "POST", "/api/jobs/j/cancel", {"ok": True}),
     (lambda a: a.cancel_jobs(["j"]), "POST", "/api/jobs/cancel", []),
     (lambda a: a.create_user("u"), "POST", "/users", {"id": "u"}),
     (lambda a: a.list_user_data("w"), "GET", "/userdata", {"a": 1}),
     (lambda a: a.get_view_metadata("loras", "x"), "GET", "/view_metadata/loras", [1]),
     (lambda a: a.upload_image(b"x", filename="a.png"), "POST", "/upload/image", {"n": 1}),
     (lambda a: a.get_node_defs("K"), "GET", "/object_info/K", {"K": "not a def"}),
     (lambda a: a.get_histories(), "GET", "/history", {"p": 3}),
     (lambda a: a.queue_prompt(API_PROMPT), "POST", "/prompt", {"number": 1})],
)
def test_unexpected_shapes_on_every_kind_of_route(h: Harness, call: Any, method: str,
                                                   path: str, body: Any) -> None:
    h.expect(method, path, json=body)
    with pytest.raises(ComfyHTTPError, match="unexpected answer") as info:
        call(h.api)
    assert info.value.status == 200 and info.value.url == h.base + path
    assert info.value.method == method and info.value.body == body


def test_proxy_login_page_with_200(h: Harness) -> None:
    h.expect("GET", "/system_stats", body="<html><body>Sign in</body></html>",
             content_type="text/html")
    with pytest.raises(ComfyHTTPError, match="not JSON"):
        h.api.get_system_stats()


# -- auth through ComfyApi ---------------------------------------------------------------------


SECRET = "pw-Zq81!"


@pytest.mark.parametrize(
    "kwargs, header",
    [({"auth": ("bob", SECRET)}, "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()),
     ({"token": SECRET}, f"Bearer {SECRET}")],
)
def test_auth_headers_on_every_route(kwargs: Dict[str, Any], header: str) -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://proxy.example/comfy/queue",
                 json={"queue_running": [], "queue_pending": []})
        mock.post("https://proxy.example/comfy/upload/image",
                  json={"name": "a.png", "subfolder": "", "type": "input"})
        api = ComfyApi("https://proxy.example/comfy", headers={"X-Org": "7"}, **kwargs)
        api.get_queue()
        api.upload_image(PNG, filename="a.png")
        for call in mock.calls:
            assert call.request.headers["Authorization"] == header
            assert call.request.headers["X-Org"] == "7"
        assert SECRET not in repr(api)
        api.close()


def test_error_text_and_logs_have_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock() as mock:
        mock.post("http://h:8188/prompt", status=400, json=VALIDATION[1]["body"])
        mock.get("http://h:8188/queue", status=500, body="boom")
        api = ComfyApi(f"http://bob:{SECRET}@h:8188", client_id="c")
        with pytest.raises(PromptValidationError) as e1:
            api.queue_prompt(API_PROMPT)
        with pytest.raises(ComfyHTTPError) as e2:
            api.get_queue()
        api.close()
    for err in (e1.value, e2.value):
        assert SECRET not in str(err) and "bob" not in str(err) and SECRET not in err.url
    assert SECRET not in caplog.text and "bob:" not in caplog.text


# -- ComfyApi itself ---------------------------------------------------------------------------


def test_comfy_api_construction_and_repr() -> None:
    api = ComfyApi("gpu1:8190/comfy", token=SECRET, timeout=(3, 60), verify=False,
                   reconnect=False)
    assert re.fullmatch(r"[0-9a-f]{32}", api.client_id)
    assert api.url == "http://gpu1:8190/comfy" and api.reconnect is False
    text = repr(api)
    assert "http://gpu1:8190/comfy" in text and api.client_id in text
    assert SECRET not in text and "auth=bearer" in text
    api.close()
    for other in (ComfyApi(), ComfyApi("h", client_id="mine")):
        assert other.url in ("http://127.0.0.1:8188", "http://h:8188")
        other.close()
    assert other.client_id == "mine"
    with pytest.raises(ValueError):
        ComfyApi("h", tracker="carrier-pigeon")
    with pytest.raises(ValueError):
        ComfyApi("h", client_id="")


def test_comfy_api_close_is_idempotent() -> None:
    api = ComfyApi("h")
    api.close()
    api.close()
    assert api.closed and "closed" in repr(api)
    with pytest.raises(ComfyConnectionError, match="closed"):
        api.get_queue()


def test_public_names_are_reexported() -> None:
    for name in ("ComfyApi", "QueuedPrompt", "QueueState", "QueueItem", "HistoryEntry",
                 "SystemStats", "NodeDef", "FileRef", "SamplerInfo", "UnsafePathError"):
        assert hasattr(comfysync, name) and name in comfysync.__all__


def test_rest_methods_compose_the_route_groups() -> None:
    groups = (ServerRoutes, FileRoutes, UserRoutes)
    assert all(issubclass(RestMethods, g) and issubclass(g, RestBase) for g in groups)
    names = [{n for n in vars(g) if not n.startswith("_")} for g in (RestMethods,) + groups]
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not first & second, "a route defined in two groups hides one of them"


def _public_methods() -> Iterator[Tuple[str, Any]]:
    for name in dir(RestMethods):
        member = getattr(RestMethods, name)
        if not name.startswith("_") and callable(member):
            yield name, member


def test_every_route_method_documents_its_parameters() -> None:
    methods = dict(_public_methods())
    assert {"queue_prompt", "get_history", "download", "get_jobs", "ping"} <= set(methods)
    for name, method in methods.items():
        doc = inspect.getdoc(method) or ""
        params = [p for p in inspect.signature(method).parameters if p != "self"]
        missing = [p for p in params if f"``{p}``" not in doc]
        assert doc and not missing, f"{name}: docstring does not name {missing}"


def test_moved_names_stay_importable_from_rest() -> None:
    from comfysync._rest import methods as _rest

    assert _rest.FileInput is FileInput
    assert set(_rest.__all__) <= set(dir(_rest))
