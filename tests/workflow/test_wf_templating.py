"""Workflow templating over API-format dicts: access, paths, lookup errors, seeds,
validation wording, output nodes, load/save."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, Dict

import pytest

from comfysync import Node, Workflow, WorkflowFormatError
from comfysync._workflow.node_specs import NodeDefsCache
from comfysync._workflow.prompt import to_prompt as ensure_api_format
from comfysync._workflow.workflow import coerce_cli_value

API: Dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 5,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
        "_meta": {"title": "KSampler"},
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "model.safetensors"},
        "_meta": {"title": "Load Checkpoint"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 512, "height": 512, "batch_size": 1},
        "_meta": {"title": "Empty Latent Image"},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a cat", "clip": ["4", 1]},
        "_meta": {"title": "Positive prompt"},
    },
    "7": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "blurry", "clip": ["4", 1]},
        "_meta": {"title": "Negative prompt"},
    },
    "8": {
        "class_type": "VAEDecode",
        "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
        "_meta": {"title": "VAE Decode"},
    },
    "9": {
        "class_type": "SaveImage",
        "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
        "_meta": {"title": "Save Image"},
    },
}


@pytest.fixture
def wf() -> Workflow:
    return Workflow(API)


# ---------------------------------------------------------------- construction & access


def test_constructor_copies_the_callers_dict() -> None:
    data = copy.deepcopy(API)
    wf = Workflow(data)
    wf["3"].inputs["seed"] = 99
    assert data["3"]["inputs"]["seed"] == 5
    data["6"]["inputs"]["text"] = "changed"
    assert wf.get("6.text") == "a cat"


def test_node_view_is_live(wf: Workflow) -> None:
    node = wf["3"]
    assert isinstance(node, Node)
    assert (node.id, node.class_type, node.title) == ("3", "KSampler", "KSampler")
    node.inputs["seed"] = 42
    node["steps"] = 30
    assert wf.to_dict()["3"]["inputs"]["seed"] == 42
    assert wf.get("3.steps") == 30
    assert node.is_linked("model") and not node.is_linked("seed")
    node.title = "Main sampler"
    assert wf.to_dict()["3"]["_meta"]["title"] == "Main sampler"
    assert wf[3] == wf["3"]  # int ids are accepted
    assert "KSampler" in repr(node) and "Main sampler" in repr(node)


def test_mapping_protocol(wf: Workflow) -> None:
    assert len(wf) == 7
    assert list(wf) == ["3", "4", "5", "6", "7", "8", "9"] == wf.ids()
    assert "3" in wf and 3 in wf and "42" not in wf and None not in wf
    with pytest.raises(KeyError):
        wf["42"]
    assert [n.id for n in wf.nodes()] == wf.ids()


def test_node_without_meta_has_no_title() -> None:
    wf = Workflow({"1": {"class_type": "SaveImage", "inputs": {}}})
    assert wf["1"].title is None
    wf["1"].title = "Out"
    assert wf.by_title("Out").id == "1"


def test_to_dict_and_copy_are_independent(wf: Workflow) -> None:
    snapshot = wf.to_dict()
    clone = wf.copy()
    clone.set("3.seed", 1)
    snapshot["3"]["inputs"]["seed"] = 2
    assert wf.get("3.seed") == 5
    assert clone.get("3.seed") == 1
    assert clone != wf and wf == API and Workflow(wf) == wf


@pytest.mark.parametrize(
    "bad, words",
    [
        ([1, 2], "not list"),
        ({"3": "KSampler"}, "node 3: expected an object"),
        ({"3": {"inputs": {}}}, "missing the class_type"),
        ({"3": {"class_type": "X", "inputs": [1]}}, "inputs must be an object"),
    ],
)
def test_constructor_refuses_non_api_shapes(bad: Any, words: str) -> None:
    with pytest.raises(WorkflowFormatError, match=words):
        Workflow(bad)


def test_constructor_refuses_ui_format_with_a_hint(default_ui: Dict[str, Any]) -> None:
    with pytest.raises(WorkflowFormatError, match="UI-format.*from_ui") as info:
        Workflow(default_ui)
    assert "api.get_node_defs()" in str(info.value) and "object_info()" not in str(info.value)


# ---------------------------------------------------------------- paths


def test_set_and_get_by_id_and_title(wf: Workflow) -> None:
    assert wf.set("3.seed", 7) is wf
    wf.set("Positive prompt.text", "a dog")
    assert wf.get("3.seed") == 7
    assert wf.get("6.text") == "a dog"
    assert wf.get("Negative prompt.text") == "blurry"
    assert wf.get("3.model") == ["4", 0]


def test_titles_with_dots_use_the_longest_matching_prefix() -> None:
    wf = Workflow(
        {
            "1": {"class_type": "A", "inputs": {"x": 1, "v.2": 0}, "_meta": {"title": "v"}},
            "2": {"class_type": "A", "inputs": {"x": 2}, "_meta": {"title": "v1.5 model"}},
            "3": {"class_type": "A", "inputs": {"x": 3}, "_meta": {"title": "a.b.c"}},
        }
    )
    assert wf.get("v1.5 model.x") == 2
    assert wf.get("a.b.c.x") == 3
    assert wf.get("v.v.2") == 0  # no node "v.v": node "v", input "v.2"
    wf.set("a.b.c.x", 30)
    assert wf["3"].inputs["x"] == 30


def test_ambiguous_title_lists_candidates() -> None:
    wf = Workflow(API)
    wf["7"].title = "Positive prompt"
    with pytest.raises(WorkflowFormatError) as err:
        wf.set("Positive prompt.text", "x")
    message = str(err.value)
    assert "ambiguous" in message and "6 (CLIPTextEncode" in message
    assert "7 (CLIPTextEncode" in message and "'6.text'" in message
    with pytest.raises(WorkflowFormatError, match="ambiguous"):
        wf.by_title("Positive prompt")
    with pytest.raises(WorkflowFormatError, match="ambiguous"):
        wf.node("Positive prompt")
    assert [n.id for n in wf.find(title="Positive prompt")] == ["6", "7"]


def test_missing_node_lists_candidates(wf: Workflow) -> None:
    with pytest.raises(WorkflowFormatError) as err:
        wf.set("Positiv prompt.text", "x")
    message = str(err.value)
    assert "no node with id or title 'Positiv prompt'" in message
    assert "6 (CLIPTextEncode 'Positive prompt')" in message
    with pytest.raises(WorkflowFormatError, match="no node titled 'Nope'.*3 \\(KSampler\\)"):
        wf.by_title("Nope")
    with pytest.raises(WorkflowFormatError, match="no node with id or title '42'"):
        wf.node(42)


def test_unknown_input_is_refused_with_the_known_inputs(wf: Workflow) -> None:
    with pytest.raises(WorkflowFormatError) as err:
        wf.set("3.sede", 1)
    message = str(err.value)
    assert "has no input 'sede' — did you mean 'seed'?" in message
    with pytest.raises(WorkflowFormatError) as err:
        wf.get("Save Image.nope")
    message = str(err.value)  # nothing close: the inputs are listed, and how to add one
    assert "has no input 'nope'; its inputs: filename_prefix, images" in message
    assert "wf['9'].inputs['nope']" in message
    # adding a new input is explicit
    wf["3"].inputs["sede"] = 1
    assert wf.get("3.sede") == 1


@pytest.mark.parametrize("path", ["3", "", "seed"])
def test_path_without_input_is_refused(wf: Workflow, path: str) -> None:
    with pytest.raises(WorkflowFormatError, match="expected '<node id or title>.<input name>'"):
        wf.set(path, 1)


def test_set_many_is_all_or_nothing(wf: Workflow) -> None:
    wf.set_many({"3.seed": 1, "Positive prompt.text": "a cat in a hat", "5.width": 768})
    assert (wf.get("3.seed"), wf.get("6.text"), wf.get("5.width")) == (1, "a cat in a hat", 768)
    with pytest.raises(WorkflowFormatError, match="nope"):
        wf.set_many({"3.seed": 2, "3.nope": 3})
    assert wf.get("3.seed") == 1


@pytest.mark.parametrize(
    "text, value",
    [
        ("42", 42),
        ("1.5", 1.5),
        ("true", True),
        ("null", None),
        ('"42"', "42"),
        ("[1, 2]", [1, 2]),
        ("a cat", "a cat"),
        ("", ""),
        ("euler_ancestral", "euler_ancestral"),
    ],
)
def test_coerce_cli_value(text: str, value: Any) -> None:
    assert coerce_cli_value(text) == value
    assert type(coerce_cli_value(text)) is type(value)


def test_set_many_with_cli_values(wf: Workflow) -> None:
    pairs = ["3.seed=123", "Positive prompt.text=a cat, 4k", "3.cfg=7.5"]
    wf.set_many({k: coerce_cli_value(v) for k, v in (p.split("=", 1) for p in pairs)})
    assert (wf.get("3.seed"), wf.get("6.text"), wf.get("3.cfg")) == (123, "a cat, 4k", 7.5)


# ---------------------------------------------------------------- lookup


def test_find_and_by_title(wf: Workflow) -> None:
    assert [n.id for n in wf.find(class_type="CLIPTextEncode")] == ["6", "7"]
    assert [n.id for n in wf.find(class_type="CLIPTextEncode", title="Negative prompt")] == ["7"]
    assert wf.find(class_type="Nope") == []
    assert len(wf.find()) == 7
    assert wf.by_title("Negative prompt").id == "7"
    assert wf.node("Save Image").id == "9" and wf.node(3).id == "3"


def test_node_ids_win_over_titles() -> None:
    wf = Workflow(
        {
            "1": {"class_type": "A", "inputs": {"x": 1}, "_meta": {"title": "2"}},
            "2": {"class_type": "B", "inputs": {"x": 2}},
        }
    )
    assert wf.get("2.x") == 2
    assert wf.by_title("2").id == "1"


# ---------------------------------------------------------------- seeds


def _seedy() -> Workflow:
    return Workflow(
        {
            "1": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 3}},
            "2": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 2}},
            "3": {"class_type": "KSampler", "inputs": {"seed": ["9", 0]}},  # linked: kept
            "4": {"class_type": "X", "inputs": {"seed": "12", "noise_seed": True}},  # not ints
            "5": {"class_type": "IdeogramV3", "inputs": {"seed": 3}},
            "9": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
        }
    )


def test_randomize_seeds_is_deterministic_with_an_rng() -> None:
    a, b = _seedy(), _seedy()
    assert a.randomize_seeds(rng=random.Random(1234)) is a  # chainable, like set()
    changes_a = a.seeds()  # the seeds it chose stay readable
    changes_b = b.randomize_seeds(rng=random.Random(1234)).seeds()
    assert changes_a == changes_b
    assert set(changes_a) == {"1.seed", "2.noise_seed", "5.seed"}
    assert all(0 <= v <= 2**64 - 1 for v in changes_a.values())
    assert (
        a.get("1.seed") == changes_a["1.seed"]
        and a.get("2.noise_seed") == changes_a["2.noise_seed"]
    )
    assert a.get("3.seed") == ["9", 0]
    assert a.get("4.seed") == "12" and a.get("4.noise_seed") is True
    assert a.get("1.steps") == 3
    expected = random.Random(1234)
    assert changes_a["1.seed"] == expected.randint(0, 2**64 - 1)


def test_randomize_seeds_honours_the_input_range(node_defs: Dict[str, Any]) -> None:
    wf = _seedy()
    maximum = node_defs["IdeogramV3"]["input"]["optional"]["seed"][1]["max"]
    assert maximum < 2**63
    for n in range(20):
        changes = wf.randomize_seeds(rng=random.Random(n), node_defs=node_defs).seeds()
        assert 0 <= changes["5.seed"] <= maximum


def test_randomize_seeds_without_rng_changes_values() -> None:
    wf = _seedy()
    seen = {wf.randomize_seeds().seeds()["1.seed"] for _ in range(3)}
    assert len(seen) > 1


# ---------------------------------------------------------------- node defs


def test_output_nodes(wf: Workflow, node_defs: Dict[str, Any]) -> None:
    assert wf.output_nodes(node_defs) == ["9"]
    data = wf.to_dict()
    data["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    assert Workflow(data).output_nodes(node_defs) == ["9", "10"]


def test_node_defs_from_the_models_module(wf: Workflow, node_defs: Dict[str, Any]) -> None:
    models = pytest.importorskip("comfysync._rest.models")
    defs = {k: models.NodeDef.from_wire(k, v) for k, v in node_defs.items()}
    assert wf.output_nodes(defs) == ["9"]
    assert wf.validate(defs) == []


def test_validate_accepts_a_good_workflow(wf: Workflow, node_defs: Dict[str, Any]) -> None:
    assert wf.validate(node_defs) == []
    assert wf.validate(node_defs, raise_errors=True) == []


def test_validate_reports_every_problem_in_server_wording(node_defs: Dict[str, Any]) -> None:
    data = copy.deepcopy(API)
    del data["3"]["inputs"]["steps"]  # required input missing
    data["8"]["inputs"]["samples"] = ["99", 0]  # link to a missing node
    data["8"]["inputs"]["vae"] = ["4", 7]  # output index out of range
    data["6"]["inputs"]["clip"] = ["4", 0]  # MODEL into CLIP
    data["7"]["inputs"]["clip"] = ["4", 1, 2]  # not a 2-element link
    data["10"] = {"class_type": "NoSuchNode", "inputs": {}}
    data["11"] = {"inputs": {}}
    problems = Workflow._adopt(data).validate(node_defs)
    assert problems == [
        "node 3 (KSampler): Required input is missing — steps",
        "node 6 (CLIPTextEncode): Return type mismatch between linked nodes — clip, "
        "received_type(MODEL) mismatch input_type(CLIP)",
        "node 7 (CLIPTextEncode): Bad linked input, must be a length-2 list of "
        "[node_id, slot_index] — clip",
        "node 8 (VAEDecode): Exception when validating node — '99' (input 'samples' links to "
        "node 99, which is not in the workflow)",
        "node 8 (VAEDecode): Exception when validating node — tuple index out of range (input "
        "'vae' links to output 7 of node 4 (CheckpointLoaderSimple), which has 3 outputs)",
        "node 10: Cannot execute because node NoSuchNode does not exist. — Node ID '#10' "
        "(not installed on the server?)",
        "node 11: Cannot execute because a node is missing the class_type property. "
        "— Node ID '#11'",
    ]
    with pytest.raises(WorkflowFormatError) as err:
        Workflow._adopt(data).validate(node_defs, raise_errors=True)
    assert str(err.value).startswith("workflow failed validation:\n")
    assert all(p in str(err.value) for p in problems)


def test_validate_reports_a_workflow_without_outputs(node_defs: Dict[str, Any]) -> None:
    data = {k: v for k, v in API.items() if k != "9"}
    assert Workflow(data).validate(node_defs) == [
        "Prompt has no outputs (no node of an output class such as SaveImage)"
    ]


def test_validate_allows_wildcard_and_raw_link_inputs(node_defs: Dict[str, Any]) -> None:
    wf = Workflow(API)
    data = wf.to_dict()
    # PreviewAny takes "*" — any output type may be linked into it
    data["10"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}
    assert Workflow(data).validate(node_defs) == []


# ---------------------------------------------------------------- files


def test_save_load_roundtrip(wf: Workflow, tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    wf.set("Positive prompt.text", "ünïcødé ✓")
    wf.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == wf.to_dict()
    again = Workflow.load(path)
    assert again == wf and again.get("6.text") == "ünïcødé ✓"
    assert Workflow.load(str(path)) == wf


def test_load_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(API).encode())
    assert Workflow.load(path) == API


@pytest.mark.parametrize(
    "content, words",
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "must be a JSON object of nodes, not list"),
        (b"\xff\xfe\x00", "is not UTF-8 text"),
        (b'{"1": 5}', "expected an object with class_type"),
    ],
)
def test_load_refuses_bad_files(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(WorkflowFormatError, match=words):
        Workflow.load(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFormatError, match="workflow file not found: .*nope.json"):
        Workflow.load(tmp_path / "nope.json")


def test_load_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFormatError, match="cannot read workflow file"):
        Workflow.load(tmp_path)


def test_load_ui_file_needs_node_defs(
    tmp_path: Path, default_ui: Dict[str, Any], node_defs: Dict[str, Any]
) -> None:
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(default_ui), encoding="utf-8")
    with pytest.raises(WorkflowFormatError,
                       match=r"UI-format workflow.*node_defs=api\.get_node_defs\(\)"):
        Workflow.load(path)
    wf = Workflow.load(path, node_defs=node_defs)
    assert wf.get("Positive prompt.text").startswith("beautiful scenery")


# ---------------------------------------------------------------- ensure_api_format


def test_ensure_api_format_accepts_every_workflow_form(
    tmp_path: Path, wf: Workflow, default_ui: Dict[str, Any], node_defs: Dict[str, Any]
) -> None:
    calls = []

    def provider() -> Dict[str, Any]:
        calls.append(1)
        return node_defs

    path = tmp_path / "api.json"
    wf.save(path)

    class HasToDict:
        def to_dict(self) -> Dict[str, Any]:
            return copy.deepcopy(API)

    for form in (wf, API, path, str(path), HasToDict()):
        result = ensure_api_format(form, provider)
        assert result == API
        assert result is not API
    assert calls == []  # API format never needs the node definitions
    converted = ensure_api_format(default_ui, provider)
    assert calls == [1]
    assert converted["6"]["inputs"]["clip"] == ["4", 1]
    ui_path = tmp_path / "ui.json"
    ui_path.write_text(json.dumps(default_ui), encoding="utf-8")
    assert ensure_api_format(ui_path, provider) == converted


def test_ensure_api_format_copies(wf: Workflow) -> None:
    result = ensure_api_format(wf)
    result["3"]["inputs"]["seed"] = 0
    assert wf.get("3.seed") == 5
    data = copy.deepcopy(API)
    ensure_api_format(data)["3"]["inputs"]["seed"] = 0
    assert data["3"]["inputs"]["seed"] == 5


def test_ensure_api_format_refusals(default_ui: Dict[str, Any]) -> None:
    with pytest.raises(WorkflowFormatError, match=r"UI-format workflow .*Export \(API\)"):
        ensure_api_format(default_ui)
    with pytest.raises(WorkflowFormatError, match="not int"):
        ensure_api_format(42)
    with pytest.raises(WorkflowFormatError, match="missing the class_type"):
        ensure_api_format({"1": {"inputs": {}}})


def test_node_defs_cache_fetches_once_and_refreshes(node_defs: Dict[str, Any]) -> None:
    fetched = []

    def fetch() -> Dict[str, Any]:
        fetched.append(1)
        return node_defs

    cache = NodeDefsCache(fetch)
    assert fetched == []
    assert cache() is node_defs and cache() is node_defs
    assert len(fetched) == 1
    assert cache.refresh() is node_defs and len(fetched) == 2
    cache.clear()
    cache()
    assert len(fetched) == 3


def test_ensure_api_format_refetches_cached_defs_once_for_unknown_classes(
    default_ui: Dict[str, Any], node_defs: Dict[str, Any]
) -> None:
    stale = {k: v for k, v in node_defs.items() if k != "VAEDecode"}
    answers = [stale, node_defs]
    cache = NodeDefsCache(lambda: answers.pop(0))
    converted = ensure_api_format(default_ui, cache)  # stale first, then fresh
    assert converted["8"]["class_type"] == "VAEDecode" and answers == []
    # still unknown after the refresh: the error reaches the caller
    answers[:] = [stale, stale]
    with pytest.raises(WorkflowFormatError, match="node 8 \\(class 'VAEDecode'\\)"):
        ensure_api_format(default_ui, NodeDefsCache(lambda: answers.pop(0)))
    assert answers == []
    # a plain provider is not asked twice
    calls = []

    def plain() -> Dict[str, Any]:
        calls.append(1)
        return stale

    with pytest.raises(WorkflowFormatError, match="install the custom nodes"):
        ensure_api_format(default_ui, plain)
    assert calls == [1]
