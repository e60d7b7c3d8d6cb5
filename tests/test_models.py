"""REST models (_models, _node_defs, _shapes) parsed from real ComfyUI v0.3.64 answers (copied
from the recordings)."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Any, Dict

import attrs
import pytest
from _recordings import (
    COPIED,
    exchanges,
    find,
    http_exchanges,
    load_recording,
    node_defs,
    recordings_available,
)

from comfysync._rest import models as _models
from comfysync._rest import node_defs as _node_defs
from comfysync._rest.models import (
    Device,
    FileRef,
    HistoryEntry,
    InputSpec,
    NodeDef,
    QueuedPrompt,
    QueueItem,
    QueueState,
    SamplerInfo,
    SystemStats,
)
from comfysync._rest.shapes import ms_to_datetime, wire_array, wire_object


def _history(recording: str, prompt_id: str) -> HistoryEntry:
    body = find(exchanges(recording), "GET", f"/history/{prompt_id}")["body"]
    return HistoryEntry.from_wire(prompt_id, body[prompt_id])


# -- FileRef -----------------------------------------------------------------------------------


def test_file_ref_from_output_item_and_upload_answer() -> None:
    out = FileRef.from_wire({"filename": "big_00001_.png", "subfolder": "sdk", "type": "output"})
    assert out == FileRef("big_00001_.png", "sdk", "output")
    assert out.to_wire() == {"filename": "big_00001_.png", "subfolder": "sdk", "type": "output"}
    upload = find(exchanges("rest_misc"), "POST", "/upload/image")["body"]
    assert FileRef.from_wire(upload) == FileRef("rec_upload.png", "sdk", "input")
    assert FileRef.from_wire({"filename": "x.png"}) == FileRef("x.png", "", "output")


def test_file_ref_is_frozen_and_rejects_nameless() -> None:
    ref = FileRef("a.png")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ref.filename = "b.png"  # type: ignore[misc]
    with pytest.raises(ValueError):
        FileRef.from_wire({"subfolder": "x"})
    with pytest.raises(TypeError):
        FileRef.from_wire(["a.png"])  # type: ignore[arg-type]


# -- QueuedPrompt / queue ----------------------------------------------------------------------


def test_queued_prompt_from_real_answer() -> None:
    body = find(exchanges("run_interrupted"), "POST", "/prompt")["body"]
    queued = QueuedPrompt.from_wire(body)
    assert queued.prompt_id == "3787f991-5a25-4b0b-81ba-c63bae0e6e59"
    assert queued.number == 11 and queued.node_errors == {} and not queued.has_node_errors
    assert queued.raw == body


def test_queued_prompt_with_dropped_outputs() -> None:
    body = {"prompt_id": "p", "number": 7.0, "node_errors": {"2": {"errors": [],
                                                                "class_type": "X"}}}
    queued = QueuedPrompt.from_wire(body)
    assert queued.has_node_errors and queued.number == 7.0
    with pytest.raises(ValueError):
        QueuedPrompt.from_wire({"number": 1})
    with pytest.raises(ValueError):
        QueuedPrompt.from_wire({"prompt_id": "p", "number": "first"})


def test_queue_state_from_real_answer_sorted_by_number() -> None:
    body = find(exchanges("run_interrupted"), "GET", "/queue")["body"]
    state = QueueState.from_wire(body)
    assert [i.prompt_id for i in state.running] == ["3787f991-5a25-4b0b-81ba-c63bae0e6e59"]
    assert [i.prompt_id for i in state.pending] == ["1323bf41-073d-421d-8bca-374e74d972d0"]
    running = state.running[0]
    assert running.number == 11 and running.outputs_to_execute == ["3"]
    assert running.client_id == "3957cd298f334b1c87f2de162c596c11"
    assert running.prompt["2"]["class_type"] == "ProbeSleep"
    assert state.remaining == 2
    assert state.is_running(running.prompt_id) and not state.is_pending(running.prompt_id)
    assert state.position("1323bf41-073d-421d-8bca-374e74d972d0") == 1
    assert "1323bf41-073d-421d-8bca-374e74d972d0" in state and "zzz" not in state
    assert state.find("zzz") is None and state.position("zzz") is None
    empty = QueueState.from_wire(find(exchanges("rest_misc"), "GET", "/queue")["body"])
    assert empty.running == [] and empty.pending == [] and empty.remaining == 0


def test_pending_heap_order_is_sorted_by_number_then_id() -> None:
    def item(number: float, pid: str) -> list:  # type: ignore[type-arg]
        return [number, pid, {}, {"client_id": "c"}, ["9"]]

    body = {"queue_running": [],
            "queue_pending": [item(3, "c"), item(-1, "front"), item(3, "a"), item(2.5, "z")]}
    state = QueueState.from_wire(body)
    assert [i.prompt_id for i in state.pending] == ["front", "z", "a", "c"]
    assert [state.position(p) for p in ("front", "z", "a", "c")] == [0, 1, 2, 3]


def test_queue_item_hides_extra_data_from_repr() -> None:
    item = QueueItem.from_wire([1, "p", {}, {"api_key_comfy_org": "SECRET-KEY"}, ["3"]])
    assert "SECRET-KEY" not in repr(item)
    with pytest.raises(ValueError):
        QueueItem.from_wire([1])
    with pytest.raises(TypeError):
        QueueItem.from_wire("nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        QueueState.from_wire({"queue_running": {"not": "a list"}})


# -- history -----------------------------------------------------------------------------------


def test_history_success_with_files() -> None:
    pid = "aa2bb527-6428-4a70-89cb-464042d851df"
    entry = _history("run_outputs_variety", pid)
    assert entry.prompt_id == pid and entry.number == 16
    assert entry.succeeded and not entry.failed and not entry.interrupted
    assert entry.status_str == "success" and entry.completed
    assert entry.outputs_to_execute == ["5", "2", "3", "4"]
    assert entry.extra_data == {"client_id": "4aa6db03fd234a52bb1ae84e9d561477"}
    assert entry.prompt["1"]["class_type"] == "ProbeNoise"
    assert entry.outputs["4"]["animated"] == [True]
    assert entry.meta["2"]["real_node_id"] == "2"
    assert [name for name, _ in entry.messages] == [
        "execution_start", "execution_cached", "execution_success"]
    assert entry.started_at == datetime.fromtimestamp(1795378759.813, tz=timezone.utc)
    assert entry.finished_at == datetime.fromtimestamp(1795378762.197, tz=timezone.utc)
    assert entry.duration == pytest.approx(2.384, abs=1e-3)
    files = entry.output_files()
    assert ("2", FileRef("big_00002_.png", "sdk", "output")) in files
    assert ("3", FileRef("ComfyUI_temp_dnlnt_00001_.png", "", "temp")) in files
    assert len(files) == 5
    assert entry.message("execution_error") is None


def test_history_fully_cached() -> None:
    pid = "f36b63f4-a995-4e83-b99c-a2cae3d5219b"
    entry = _history("run_fully_cached", pid)
    assert entry.succeeded
    assert entry.cached_nodes == ["1", "2", "3", "4"]
    assert entry.outputs["4"] == {"text": ["done", "(1, 64, 64, 3)"]}
    assert entry.duration == pytest.approx(0.001, abs=1e-6)


def test_history_execution_error() -> None:
    pid = "0ef0dc42-800b-446d-805b-0a185be18843"
    entry = _history("run_execution_error", pid)
    assert not entry.succeeded and entry.failed and not entry.interrupted
    assert entry.outputs == {} and entry.meta == {}
    error = entry.message("execution_error")
    assert error is not None
    assert error["node_id"] == "2" and error["node_type"] == "ProbeFail"
    assert error["exception_type"] == "RuntimeError"
    assert error["exception_message"] == "boom from probe\n"
    assert entry.output_files() == []


def test_history_interrupted() -> None:
    pid = "3787f991-5a25-4b0b-81ba-c63bae0e6e59"
    entry = _history("run_interrupted", pid)
    assert entry.interrupted and entry.failed and not entry.succeeded
    assert entry.message("execution_interrupted") == {
        "prompt_id": pid, "node_id": "2", "node_type": "ProbeSleep", "executed": [],
        "timestamp": 1795377839002}
    assert entry.cached_nodes == ["1"]
    assert entry.finished_at == datetime.fromtimestamp(1795377839.002, tz=timezone.utc)


def test_history_tolerates_sparse_entries() -> None:
    entry = HistoryEntry.from_wire("p", {"outputs": {"1": {"text": ["x"]}}})
    assert entry.status_str is None and not entry.succeeded and not entry.failed
    assert entry.started_at is None and entry.finished_at is None and entry.duration is None
    assert entry.number is None and entry.prompt == {}
    odd = HistoryEntry.from_wire("p", {"status": {"messages": [["x"], "y", ["ok", {}]]}})
    assert odd.messages == [("ok", {})]
    with pytest.raises(TypeError):
        HistoryEntry.from_wire("p", {"outputs": ["not", "a", "dict"]})


# -- system stats ------------------------------------------------------------------------------


def test_system_stats_from_real_answer() -> None:
    body = find(exchanges("rest_misc"), "GET", "/system_stats")["body"]
    stats = SystemStats.from_wire(body)
    assert stats.comfyui_version == "0.3.64"
    assert stats.python_version is not None and stats.python_version.startswith("3.11.7")
    assert stats.pytorch_version == "2.14.1+cu130"
    assert stats.os == "posix" and stats.ram_total == 25276063744
    assert stats.embedded_python is False and stats.required_frontend_version == "1.27.10"
    assert stats.argv[:2] == ["main.py", "--cpu"]
    assert stats.devices == [Device(name="cpu", type="cpu", index=None,
                                    vram_total=25276063744, vram_free=24054132736,
                                    torch_vram_total=25276063744,
                                    torch_vram_free=24054132736)]
    assert stats.raw["system"]["installed_templates_version"] == "0.1.95"
    assert "argv" not in repr(stats)


# -- node definitions --------------------------------------------------------------------------


def _node(name: str) -> NodeDef:
    return NodeDef.from_wire(name, node_defs()[name])


def test_node_def_classic_from_recording() -> None:
    body: Dict[str, Any] = find(exchanges("rest_misc"), "GET", "/object_info/EmptyImage")["body"]
    node = NodeDef.from_wire("EmptyImage", body["EmptyImage"])
    assert node.name == "EmptyImage" and node.display_name == "EmptyImage"
    assert node.input_names() == ["width", "height", "batch_size", "color"]
    width = node.input("width")
    assert width is not None and width.type == "INT" and width.default == 512
    assert width.options["max"] == 16384 and not width.is_combo
    assert node.output == ["IMAGE"] and node.output_is_list == [False]
    assert node.output_name == ["IMAGE"] and not node.output_node
    assert node.input("nope") is None and node.combo_options("nope") is None
    assert node.raw == body["EmptyImage"]


def test_node_def_ordering_and_combos() -> None:
    ks = _node("KSampler")
    assert ks.input_names() == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler",
                                "positive", "negative", "latent_image", "denoise"]
    samplers = ks.combo_options("sampler_name")
    assert samplers is not None and samplers[0] == "euler" and "dpmpp_2m" in samplers
    assert ks.combo_options("steps") is None
    assert ks.category == "sampling" and ks.python_module == "nodes"
    info = SamplerInfo.from_node_def(ks)
    assert info.samplers == samplers and "karras" in info.schedulers


def test_node_def_v3_combo_hidden_and_flags() -> None:
    ays = _node("AlignYourStepsScheduler")
    assert ays.combo_options("model_type") == ["SD1", "SDXL", "SVD"]
    spec = ays.input("model_type")
    assert spec is not None and spec.type == "COMBO" and spec.is_combo
    assert ays.display_name == "AlignYourStepsScheduler"  # V3 may send display_name null
    save = _node("SaveImage")
    assert save.output_node and save.output == []
    assert save.input_names() == ["images", "filename_prefix"]
    hidden = [s for s in save.inputs(include_hidden=True) if s.category == "hidden"]
    assert [(s.name, s.type) for s in hidden] == [("prompt", "PROMPT"),
                                                  ("extra_pnginfo", "EXTRA_PNGINFO")]
    assert _node("CheckpointLoader").deprecated
    assert not save.deprecated and not save.experimental
    assert _node("CheckpointLoaderSimple").combo_options("ckpt_name") == []
    assert _node("LoadImage").combo_options("image") == ["example.png"]
    v3 = _node("ByteDanceImageEditNode")
    assert all(isinstance(s, InputSpec) for s in v3.inputs(include_hidden=True))


def test_node_def_defaults_for_minimal_definition() -> None:
    node = NodeDef.from_wire("X", {"input": {"required": {"a": ["INT"], "b": ["*"]}},
                                   "output": ["IMAGE", "MASK"]})
    assert node.name == "X" and node.display_name == "X"
    assert node.output_is_list == [False, False] and node.output_name == ["IMAGE", "MASK"]
    assert node.input_names() == ["a", "b"]
    assert NodeDef.from_wire("Y", {}).inputs() == []


def test_sampler_info_without_combos() -> None:
    assert SamplerInfo.from_node_def(NodeDef.from_wire("K", {})) == SamplerInfo([], [])


# -- module layout, shapes, documentation -----------------------------------------------------


def test_node_def_models_are_reexported_from_models() -> None:
    for name in _node_defs.__all__:
        assert getattr(_models, name) is getattr(_node_defs, name) and name in _models.__all__


def test_wire_shape_helpers() -> None:
    assert wire_object(None, "x") == {} and wire_array(None, "x") == []
    source = {"a": 1}
    copy = wire_object(source, "x")
    assert copy == source and copy is not source
    assert wire_array((1, 2), "x") == [1, 2]
    with pytest.raises(TypeError, match="node outputs: expected a JSON object, got list"):
        wire_object([1], "node outputs")
    with pytest.raises(TypeError, match="argv: expected a JSON array, got str"):
        wire_array("main.py", "argv")
    assert ms_to_datetime(1500) == datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=timezone.utc)
    assert ms_to_datetime(True) is None and ms_to_datetime("1500") is None


def _public_members(cls: type) -> Dict[str, Any]:
    return {name: member for name, member in vars(cls).items()
            if not name.startswith("_") and (callable(member) or
                                             isinstance(member, (property, classmethod)))}


@pytest.mark.parametrize("cls", [getattr(_models, n) for n in _models.__all__],
                         ids=list(_models.__all__))
def test_every_public_model_member_is_documented(cls: type) -> None:
    assert inspect.getdoc(cls)
    for name, member in _public_members(cls).items():
        func = member.__func__ if isinstance(member, classmethod) else member
        doc = (func.fget if isinstance(func, property) else func).__doc__
        assert doc and doc.strip(), f"{cls.__name__}.{name} has no docstring"
        if not isinstance(func, property):
            params = [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]
            missing = [p for p in params if f"``{p}``" not in doc]
            assert not missing, f"{cls.__name__}.{name}: docstring does not name {missing}"


@pytest.mark.skipif(not recordings_available(), reason="../shared recordings not present")
def test_copied_fixtures_match_the_recordings() -> None:
    """tests/data holds verbatim copies; regenerate with `python tests/_recordings.py`."""
    for name in COPIED:
        assert exchanges(name) == http_exchanges(load_recording(name)), name
