"""The seams between the workflow modules, tested directly: reading node definitions
(``_node_specs``), parsing the editor's graph (``_ui_graph``), widget values → inputs
(``_ui_widgets``) and the API-shape check (``_format.check_api_shape``). The conversion and
templating tests exercise the same code end to end; these pin each module's own contract."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

import pytest

from comfysync import NodeDef, WorkflowFormatError
from comfysync._workflow.format import check_api_shape
from comfysync._workflow.node_specs import (
    SEED_MAX,
    NodeDefIndex,
    NodeDefsCache,
    WidgetSlot,
    seed_range,
    widget_slots,
)
from comfysync._workflow.ui_graph import SUBGRAPH_INPUT_NODE, UiLink, describe, node_mode, parse_ui
from comfysync._workflow.ui_widgets import literal, widget_inputs

# ---------------------------------------------------------------------- _node_specs


def test_widget_slots_follow_input_order_and_skip_sockets(node_defs: Dict[str, Any]) -> None:
    slots = widget_slots(NodeDef.from_wire("KSampler", node_defs["KSampler"]))
    assert [s.name for s in slots] == [
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "denoise",
    ]
    assert [s.has_control for s in slots] == [True, False, False, False, False, False]
    assert slots[3].kind == "COMBO" and slots[3].choices is not None
    assert "euler" in slots[3].choices


def test_widget_slots_control_option_and_force_input() -> None:
    info = {
        "input": {
            "required": {
                "seed": ["INT", {"control_after_generate": False}],
                "count": ["INT", {"control_after_generate": True}],
                "noise_seed": ["INT", {}],
                "wired": ["FLOAT", {"forceInput": True}],
                "image": ["IMAGE", {}],
            },
            "optional": {"mode": ["COMBO", {"options": ["a", "b"]}]},
        },
        "input_order": {"required": ["noise_seed", "count"]},
    }
    slots = widget_slots(NodeDef.from_wire("X", info))
    # input_order first, then the inputs the order leaves out; optional after required
    assert [(s.name, s.has_control) for s in slots] == [
        ("noise_seed", True),
        ("count", True),
        ("seed", False),
        ("mode", False),
    ]
    assert slots[-1].choices == ["a", "b"]


@pytest.mark.parametrize(
    ("slot", "expected"),
    [
        (WidgetSlot("n", "INT", {"default": 7}, None, False), (True, 7)),
        (WidgetSlot("c", "COMBO", {}, ["x", "y"], False), (True, "x")),
        (WidgetSlot("c", "COMBO", {}, [], False), (False, None)),
        (WidgetSlot("s", "STRING", {}, None, False), (False, None)),
    ],
)
def test_widget_default(slot: WidgetSlot, expected: Any) -> None:
    assert slot.default() == expected


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("INT", 3, True),
        ("FLOAT", 1.5, "1.5"),
        ("STRING", "text", 3),
        ("BOOLEAN", False, 0),
        ("COMBO", 2, None),
    ],
)
def test_widget_fits_by_kind(kind: str, good: Any, bad: Any) -> None:
    slot = WidgetSlot("x", kind, {}, None, False)
    assert slot.fits(good) and not slot.fits(bad)


def test_seed_range_defaults_and_narrowing() -> None:
    assert seed_range(None, "seed") == (0, SEED_MAX)
    info = NodeDef.from_wire(
        "X", {"input": {"required": {"seed": ["INT", {"min": -5, "max": 2**31 - 1}]}}}
    )
    assert seed_range(info, "seed") == (0, 2**31 - 1)
    assert seed_range(info, "other") == (0, SEED_MAX)


def test_node_def_index_reads_both_forms_once_and_refuses_others() -> None:
    wire: Dict[str, Any] = {"input": {"required": {"x": ["INT", {}]}}, "output_node": True}
    typed = NodeDef.from_wire("A", wire)
    index = NodeDefIndex({"A": typed, "B": wire, "C": 3})
    assert index.get("A") is typed
    parsed = index.get("B")
    assert isinstance(parsed, NodeDef) and parsed == NodeDef.from_wire("B", wire)
    assert index.get("B") is parsed  # parsed once, then kept
    assert index.get("C") is None and "C" not in index and "B" in index
    assert index.names() == ["A", "B", "C"]
    with pytest.raises(WorkflowFormatError, match=r"node_defs must map class_type.*"
                       r"api\.get_node_defs\(\)"):
        NodeDefIndex([wire])  # type: ignore[arg-type]


def test_node_defs_cache_fetches_once_until_refreshed() -> None:
    calls: List[int] = []
    lock = threading.Lock()

    def fetch() -> Dict[str, Any]:
        with lock:
            calls.append(1)
            return {"n": len(calls)}

    cache = NodeDefsCache(fetch)
    assert cache() == {"n": 1} and cache() == {"n": 1}
    assert cache.refresh() == {"n": 2} and cache() == {"n": 2}
    cache.clear()
    assert cache() == {"n": 3} and len(calls) == 3


# ---------------------------------------------------------------------- _ui_graph


def test_both_link_forms_parse_to_the_same_link() -> None:
    nodes = [{"id": 1, "type": "A"}, {"id": 2, "type": "B", "mode": 4}]
    as_array = parse_ui({"nodes": nodes, "links": [[7, 1, 0, 2, 1, "IMAGE"], None]})
    as_dict = parse_ui(
        {
            "nodes": nodes,
            "links": [
                {
                    "id": 7,
                    "origin_id": 1,
                    "origin_slot": 0,
                    "target_id": 2,
                    "target_slot": 1,
                    "type": "IMAGE",
                }
            ],
        }
    )
    expected = {7: UiLink("1", 0, "2", 1, "IMAGE")}
    assert as_array.root.links == expected and as_dict.root.links == expected
    assert as_array.root.link("7") == expected[7]
    assert as_array.root.link("x") is None and as_array.root.link(None) is None
    assert [node_mode(n) for n in as_array.root.nodes.values()] == [0, 4]


@pytest.mark.parametrize(
    ("ui", "message"),
    [
        ({"nodes": [], "links": [[1, 2]]}, "malformed link"),
        ({"nodes": [], "links": {}}, "'links' must be a list"),
        ({"nodes": [{"id": 1}]}, "malformed node"),
        ({"nodes": [], "definitions": {"subgraphs": {}}}, "must be a list"),
        ({"nodes": [], "definitions": {"subgraphs": [{"name": "x"}]}}, "needs an 'id'"),
    ],
)
def test_malformed_graph_parts_are_refused(ui: Dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowFormatError, match=message):
        parse_ui(ui)


def test_subgraph_instance_graph_prefixes_ids_and_finds_its_boundary_links() -> None:
    definition = {
        "id": "sub-1",
        "name": "inner",
        "nodes": [{"id": 5, "type": "A"}],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 5, "target_slot": 0},
            {"id": 2, "origin_id": 5, "origin_slot": 0, "target_id": -20, "target_slot": 0},
        ],
    }
    document = parse_ui(
        {
            "nodes": [{"id": 3, "type": "sub-1"}],
            "definitions": {"subgraphs": [definition]},
            "extra": {"groupNodes": {"g": {}}},
        }
    )
    assert set(document.subgraphs) == {"sub-1"} and document.group_nodes == {"g"}
    instance = document.root.nodes["3"]
    inner = document.root.instance_graph("3", instance, document.subgraphs["sub-1"])
    assert inner.prefix == "3:" and inner.parent is document.root and inner.instance is instance
    assert [link.target_id for link in inner.from_subgraph_input(0)] == ["5"]
    assert list(inner.from_subgraph_input(1)) == []
    out = inner.to_subgraph_output(0)
    assert out is not None and out.origin_id == "5"
    assert inner.to_subgraph_output(1) is None
    assert SUBGRAPH_INPUT_NODE == "-10"


def test_describe_names_title_only_when_it_differs() -> None:
    assert describe({"type": "KSampler", "title": "KSampler"}, "3") == "node 3 (class 'KSampler')"
    assert describe({"type": "KSampler", "title": "Mine"}, "2:3") == (
        "node 2:3 'Mine' (class 'KSampler')"
    )


# ---------------------------------------------------------------------- _ui_widgets


def test_widget_inputs_consume_the_control_value_and_fill_defaults(
    node_defs: Dict[str, Any],
) -> None:
    node = {"id": 3, "type": "KSampler", "widgets_values": [42, "randomize", 20, 7.5]}
    assert widget_inputs("3", node, NodeDef.from_wire("KSampler", node_defs["KSampler"])) == {
        "seed": 42,
        "steps": 20,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "simple",
        "denoise": 1.0,
    }


def test_widget_inputs_by_name_and_list_literals() -> None:
    info = {"input": {"required": {"values": ["STRING", {}], "n": ["INT", {"default": 2}]}}}
    node = {"id": 1, "type": "X", "widgets_values": {"values": ["a", "b"]}}
    assert widget_inputs("1", node, NodeDef.from_wire("X", info)) == {
        "values": {"__value__": ["a", "b"]}, "n": 2}
    assert literal([1, 0]) == {"__value__": [1, 0]} and literal(5) == 5


def test_widget_inputs_refuse_shifted_values(node_defs: Dict[str, Any]) -> None:
    node = {"id": 3, "type": "KSampler", "widgets_values": [42, 20]}
    with pytest.raises(WorkflowFormatError, match="control_after_generate choice after 'seed'"):
        widget_inputs("3", node, NodeDef.from_wire("KSampler", node_defs["KSampler"]))


# ---------------------------------------------------------------------- _format


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"1": 3}, "expected an object with class_type"),
        ({"1": {"inputs": {}}}, "missing the class_type property"),
        ({"1": {"class_type": "A", "inputs": []}}, r"node 1 \(A\): inputs must be an object"),
        ({"1": {"class_type": 3, "inputs": {}}}, "node 1: class_type must be a string"),
    ],
)
def test_check_api_shape_names_the_first_bad_node(data: Dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowFormatError, match=message):
        check_api_shape(data)
    check_api_shape({"1": {"class_type": "A"}, "2": {"class_type": "B", "inputs": {}}})


def test_check_api_shape_names_the_source() -> None:
    with pytest.raises(WorkflowFormatError, match=r"^node 1 in wf\.json: expected an object"):
        check_api_shape({"1": 3}, source="wf.json")
    with pytest.raises(WorkflowFormatError,
                       match=r"^node 2 \(B\) in wf\.json: inputs must be an object, got list"):
        check_api_shape({"1": {"class_type": "A"}, "2": {"class_type": "B", "inputs": []}},
                        source="wf.json")
