"""UI → API conversion, one rule at a time, on small hand-built UI graphs (real v0.3.64 node
definitions, plus a few made-up classes for edge cases). Every refusal path is here."""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pytest

from comfysync import Workflow, WorkflowFormatError
from comfysync._workflow.prompt import to_prompt as convert_ui_to_api

SlotSpec = Union[Tuple[str, str], Tuple[str, str, str]]


class UI:
    """A tiny builder for editor save files (only the fields the converter reads)."""

    def __init__(self) -> None:
        self.nodes: List[Dict[str, Any]] = []
        self.links: List[List[Any]] = []
        self.subgraphs: List[Dict[str, Any]] = []

    def node(
        self,
        node_id: int,
        kind: str,
        wv: Any = None,
        *,
        mode: int = 0,
        title: Optional[str] = None,
        inputs: Sequence[SlotSpec] = (),
        outputs: Sequence[str] = (),
    ) -> Dict[str, Any]:
        node: Dict[str, Any] = {
            "id": node_id,
            "type": kind,
            "mode": mode,
            "inputs": [
                {
                    "name": s[0],
                    "type": s[1],
                    "link": None,
                    **({"widget": {"name": s[0]}} if len(s) > 2 else {}),
                }
                for s in inputs
            ],
            "outputs": [{"name": t, "type": t, "links": []} for t in outputs],
            "properties": {},
        }
        if wv is not None:
            node["widgets_values"] = wv
        if title is not None:
            node["title"] = title
        self.nodes.append(node)
        return node

    def _find(self, node_id: int) -> Dict[str, Any]:
        return next(n for n in self.nodes if n["id"] == node_id)

    def link(self, src: int, src_slot: int, dst: int, dst_slot: int) -> int:
        link_id = len(self.links) + 1
        source, target = self._find(src), self._find(dst)
        kind = source["outputs"][src_slot]["type"] if source["outputs"] else "*"
        self.links.append([link_id, src, src_slot, dst, dst_slot, kind])
        target["inputs"][dst_slot]["link"] = link_id
        if source["outputs"]:
            source["outputs"][src_slot]["links"].append(link_id)
        return link_id

    def data(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "last_node_id": 0,
            "nodes": self.nodes,
            "links": self.links,
            "version": 0.4,
        }
        if self.subgraphs:
            out["definitions"] = {"subgraphs": self.subgraphs}
        return out


def convert(ui: UI, defs: Dict[str, Any]) -> Dict[str, Any]:
    return Workflow.from_ui(ui.data(), defs).to_dict()


def chain(ui: UI) -> None:
    """Checkpoint(4) → CLIPTextEncode(6) …, the start of the default graph."""
    ui.node(4, "CheckpointLoaderSimple", ["m.safetensors"], outputs=["MODEL", "CLIP", "VAE"])
    ui.node(
        6,
        "CLIPTextEncode",
        ["a cat"],
        title="Positive",
        inputs=[("clip", "CLIP")],
        outputs=["CONDITIONING"],
    )
    ui.link(4, 1, 6, 0)


# ---------------------------------------------------------------- widgets


def test_widgets_map_in_input_order_and_seed_control_is_consumed(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(
        3,
        "KSampler",
        [7, "randomize", 20, 8.5, "euler", "karras", 0.75],
        inputs=[
            ("model", "MODEL"),
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("latent_image", "LATENT"),
        ],
        outputs=["LATENT"],
    )
    ui.node(9, "SaveImage", ["out"], inputs=[("images", "IMAGE")])
    api = convert(ui, node_defs)
    assert api["3"] == {
        "inputs": {
            "seed": 7,
            "steps": 20,
            "cfg": 8.5,
            "sampler_name": "euler",
            "scheduler": "karras",
            "denoise": 0.75,
        },
        "class_type": "KSampler",
        "_meta": {"title": "KSampler"},
    }


@pytest.mark.parametrize("control", ["fixed", "increment", "decrement", "randomize", True, False])
def test_every_control_value_is_consumed(node_defs: Dict[str, Any], control: Any) -> None:
    ui = UI()
    ui.node(1, "RandomNoise", [11, control], outputs=["NOISE"])
    ui.node(2, "PrimitiveInt", [5, control], outputs=["INT"])  # control_after_generate: true
    ui.node(9, "PreviewAny", ["x"], inputs=[("source", "*")])
    api = convert(ui, node_defs)
    assert api["1"]["inputs"] == {"noise_seed": 11}
    assert api["2"]["inputs"] == {"value": 5}


def test_explicit_control_after_generate_false_has_no_control_widget(
    node_defs: Dict[str, Any],
) -> None:
    defs = dict(node_defs)
    defs["Seeded"] = {
        "input": {
            "required": {"seed": ["INT", {"control_after_generate": False}], "steps": ["INT", {}]}
        },
        "input_order": {"required": ["seed", "steps"]},
        "output": [],
        "output_node": True,
        "display_name": "Seeded",
    }
    ui = UI()
    ui.node(1, "Seeded", [3, 4])
    assert convert(ui, defs)["1"]["inputs"] == {"seed": 3, "steps": 4}


def test_upload_and_other_editor_widgets_after_the_inputs_are_ignored(
    node_defs: Dict[str, Any],
) -> None:
    ui = UI()
    ui.node(1, "LoadImage", ["cat.png", "image"], outputs=["IMAGE", "MASK"])
    ui.node(2, "LoadAudio", ["a.mp3", None, None], outputs=["AUDIO"])
    ui.node(9, "SaveImage", ["x", ""], inputs=[("images", "IMAGE")])
    ui.link(1, 0, 9, 0)
    api = convert(ui, node_defs)
    assert api["1"]["inputs"] == {"image": "cat.png"}
    assert api["2"]["inputs"] == {"audio": "a.mp3"}
    assert api["9"]["inputs"] == {"filename_prefix": "x", "images": ["1", 0]}


def test_missing_trailing_values_take_the_defaults(node_defs: Dict[str, Any]) -> None:
    defs = dict(node_defs)
    defs["Picky"] = {
        "input": {
            "required": {"a": ["INT", {"default": 1}], "b": [["x", "y"]], "c": ["STRING", {}]}
        },
        "input_order": {"required": ["a", "b", "c"]},
        "output": [],
        "output_node": True,
    }
    ui = UI()
    ui.node(9, "SaveImage", None, inputs=[("images", "IMAGE")])  # no widgets_values at all
    ui.node(5, "EmptyLatentImage", [640], outputs=["LATENT"])
    ui.node(7, "Picky", [])
    api = convert(ui, defs)
    assert api["9"]["inputs"] == {"filename_prefix": "ComfyUI"}
    assert api["5"]["inputs"] == {"width": 640, "height": 512, "batch_size": 1}
    assert api["7"]["inputs"] == {"a": 1, "b": "x"}  # no default for c: left to the server
    assert api["7"]["_meta"] == {"title": "Picky"}  # no display_name: the class name


def test_widgets_values_saved_as_a_dict_are_matched_by_name(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(5, "EmptyLatentImage", {"height": 768, "width": 1024, "extra": 1}, outputs=["LATENT"])
    ui.node(9, "PreviewAny", {"source": "ignored"}, inputs=[("source", "*")])
    ui.link(5, 0, 9, 0)
    api = convert(ui, node_defs)
    assert api["5"]["inputs"] == {"width": 1024, "height": 768, "batch_size": 1}


@pytest.mark.parametrize(
    "values, words",
    [
        (
            [7, "randomize", "euler", 8, 20, "normal", 1],
            "'euler' does not fit input 'steps' \\(INT\\)",
        ),
        ([7, 20, 8, "euler", "normal", 1], "expected a control_after_generate choice after 'seed'"),
        (["7", "randomize", 20, 8, "euler", "normal", 1], "'7' does not fit input 'seed'"),
        (
            [7, "randomize", 20, "8", "euler", "normal", 1],
            "'8' does not fit input 'cfg' \\(FLOAT\\)",
        ),
        ([7, "randomize", 20, 8, None, "normal", 1], "None does not fit input 'sampler_name'"),
        ([7, "randomize", 20, True, "euler", "normal", 1], "True does not fit input 'cfg'"),
    ],
)
def test_values_that_do_not_fit_the_definition_are_refused(
    node_defs: Dict[str, Any], values: List[Any], words: str
) -> None:
    ui = UI()
    ui.node(3, "KSampler", values, title="Sampler", outputs=["LATENT"])
    with pytest.raises(WorkflowFormatError) as err:
        convert(ui, node_defs)
    message = str(err.value)
    assert "node 3 'Sampler' (class 'KSampler')" in message
    assert "saved by another version" in message
    assert pytest.importorskip("re").search(words, message), message


def test_text_and_boolean_widgets(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(
        1,
        "ImageStitch",
        ["right", True, 0, "white"],
        inputs=[("image1", "IMAGE")],
        outputs=["IMAGE"],
    )
    ui.node(2, "StringConcatenate", ["a", "b", ", "], outputs=["STRING"])
    api = convert(ui, node_defs)
    assert api["1"]["inputs"] == {
        "direction": "right",
        "match_image_size": True,
        "spacing_width": 0,
        "spacing_color": "white",
    }
    assert api["2"]["inputs"] == {"string_a": "a", "string_b": "b", "delimiter": ", "}


# ---------------------------------------------------------------- links


def test_links_and_titles(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    api = convert(ui, node_defs)
    assert api == {
        "4": {
            "inputs": {"ckpt_name": "m.safetensors"},
            "class_type": "CheckpointLoaderSimple",
            "_meta": {"title": "Load Checkpoint"},
        },
        "6": {
            "inputs": {"text": "a cat", "clip": ["4", 1]},
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "Positive"},
        },
    }


def test_dict_form_links(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    data = ui.data()
    data["links"] = [
        {
            "id": link[0],
            "origin_id": link[1],
            "origin_slot": link[2],
            "target_id": link[3],
            "target_slot": link[4],
            "type": link[5],
        }
        for link in data["links"]
    ]
    assert convert_ui_to_api(data, node_defs)["6"]["inputs"]["clip"] == ["4", 1]


def test_converted_widget_takes_the_link(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(1, "PrimitiveInt", [33, "fixed"], outputs=["INT"])
    ui.node(
        5,
        "EmptyLatentImage",
        [512, 512, 1],
        inputs=[("width", "INT", "w"), ("height", "INT", "w")],
        outputs=["LATENT"],
    )
    ui.link(1, 0, 5, 0)  # width linked, height converted but not linked
    api = convert(ui, node_defs)
    assert api["5"]["inputs"] == {"width": ["1", 0], "height": 512, "batch_size": 1}


def test_input_pointing_at_an_unknown_link_keeps_the_widget(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    node = ui.node(
        5, "EmptyLatentImage", [512, 256, 1], inputs=[("width", "INT", "w")], outputs=["LATENT"]
    )
    node["inputs"][0]["link"] = 999
    assert convert(ui, node_defs)["5"]["inputs"]["width"] == 512


def test_reroutes_are_followed(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(20, "Reroute", None, inputs=[("", "*")], outputs=["*"])
    ui.node(21, "Reroute", None, inputs=[("", "*")], outputs=["*"])
    ui.node(7, "CLIPTextEncode", ["neg"], inputs=[("clip", "CLIP")], outputs=["CONDITIONING"])
    ui.node(22, "Reroute", None, inputs=[("", "*")], outputs=["*"])  # dangling
    ui.node(
        8,
        "CLIPTextEncode",
        ["x"],
        inputs=[("clip", "CLIP"), ("text", "STRING", "w")],
        outputs=["CONDITIONING"],
    )
    ui.link(4, 1, 20, 0)
    ui.link(20, 0, 21, 0)
    ui.link(21, 0, 7, 0)
    ui.link(22, 0, 8, 0)
    ui.link(22, 0, 8, 1)
    api = convert(ui, node_defs)
    assert api["7"]["inputs"] == {"text": "neg", "clip": ["4", 1]}
    assert api["8"]["inputs"] == {"text": "x"}  # nothing behind the reroute
    assert not {"20", "21", "22"} & set(api)


def test_reroute_loop_is_refused(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(20, "Reroute", None, inputs=[("", "*")], outputs=["*"])
    ui.node(21, "Reroute", None, inputs=[("", "*")], outputs=["*"])
    ui.node(7, "CLIPTextEncode", ["neg"], inputs=[("clip", "CLIP")], outputs=["CONDITIONING"])
    ui.link(20, 0, 21, 0)
    ui.link(21, 0, 20, 0)
    ui.link(21, 0, 7, 0)
    with pytest.raises(WorkflowFormatError, match="links loop"):
        convert(ui, node_defs)


def test_primitive_node_values_are_inlined(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(30, "PrimitiveNode", [1024, "fixed"], title="size", outputs=["INT"])
    ui.node(31, "PrimitiveNode", [], outputs=["INT"])  # never given a value
    ui.node(32, "PrimitiveNode", ["a red fox"], outputs=["STRING"])
    ui.node(
        5,
        "EmptyLatentImage",
        [512, 512, 1],
        inputs=[("width", "INT", "w"), ("height", "INT", "w")],
        outputs=["LATENT"],
    )
    ui.node(
        6,
        "CLIPTextEncode",
        ["stale"],
        inputs=[("clip", "CLIP"), ("text", "STRING", "w")],
        outputs=["CONDITIONING"],
    )
    ui.node(20, "Reroute", None, inputs=[("", "*")], outputs=["*"])
    ui.link(30, 0, 5, 0)
    ui.link(31, 0, 5, 1)
    ui.link(32, 0, 20, 0)
    ui.link(20, 0, 6, 1)
    api = convert(ui, node_defs)
    assert api["5"]["inputs"] == {"width": 1024, "height": 512, "batch_size": 1}
    assert api["6"]["inputs"] == {"text": "a red fox"}
    assert not {"30", "31", "32"} & set(api)


def test_get_and_set_nodes_are_followed(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(40, "SetNode", ["clip"], inputs=[("CLIP", "CLIP")], outputs=["*"])
    ui.node(41, "GetNode", ["clip"], outputs=["CLIP"])
    ui.node(7, "CLIPTextEncode", ["neg"], inputs=[("clip", "CLIP")], outputs=["CONDITIONING"])
    ui.link(4, 1, 40, 0)
    ui.link(41, 0, 7, 0)
    api = convert(ui, node_defs)
    assert api["7"]["inputs"]["clip"] == ["4", 1]
    assert not {"40", "41"} & set(api)


def test_get_node_without_or_with_two_set_nodes_is_refused(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(41, "GetNode", ["clip"], title="Get clip", outputs=["CLIP"])
    ui.node(7, "CLIPTextEncode", ["neg"], inputs=[("clip", "CLIP")], outputs=["CONDITIONING"])
    ui.link(41, 0, 7, 0)
    with pytest.raises(WorkflowFormatError, match="node 41 'Get clip'.*no SetNode named 'clip'"):
        convert(ui, node_defs)
    ui.node(40, "SetNode", ["clip"], inputs=[("CLIP", "CLIP")])
    ui.node(42, "SetNode", ["clip"], inputs=[("CLIP", "CLIP")])
    with pytest.raises(WorkflowFormatError, match="several SetNodes named 'clip'"):
        convert(ui, node_defs)


# ---------------------------------------------------------------- modes and virtual nodes


def test_muted_nodes_are_dropped_with_their_links(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(
        11,
        "LoraLoader",
        ["l.safetensors", 1, 1],
        mode=2,
        inputs=[("model", "MODEL"), ("clip", "CLIP")],
        outputs=["MODEL", "CLIP"],
    )
    ui.node(
        12,
        "ImageStitch",
        ["right", True, 0, "white"],
        mode=0,
        inputs=[("image1", "IMAGE"), ("image2", "IMAGE")],
        outputs=["IMAGE"],
    )
    ui.node(13, "LoadImage", ["a.png", "image"], mode=2, outputs=["IMAGE", "MASK"])
    ui.node(14, "LoadImage", ["b.png", "image"], outputs=["IMAGE", "MASK"])
    ui.node(7, "CLIPTextEncode", ["neg"], inputs=[("clip", "CLIP")], outputs=["CONDITIONING"])
    ui.link(4, 0, 11, 0)
    ui.link(4, 1, 11, 1)
    ui.link(11, 1, 7, 0)
    ui.link(14, 0, 12, 0)
    ui.link(13, 0, 12, 1)  # optional input fed by a muted node: simply absent
    api = convert(ui, node_defs)
    assert "11" not in api and "13" not in api
    assert api["7"]["inputs"] == {"text": "neg"}  # required input: left to validate/server
    assert api["12"]["inputs"] == {
        "direction": "right",
        "match_image_size": True,
        "spacing_width": 0,
        "spacing_color": "white",
        "image1": ["14", 0],
    }
    problems = Workflow(api).validate(node_defs)
    assert "node 7 (CLIPTextEncode): Required input is missing — clip" in problems


def test_bypassed_nodes_pass_their_matching_input_through(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    lora_io = dict(inputs=[("model", "MODEL"), ("clip", "CLIP")], outputs=["MODEL", "CLIP"])
    ui.node(11, "LoraLoader", ["a.safetensors", 1, 1], mode=4, **lora_io)  # type: ignore[arg-type]
    ui.node(12, "LoraLoader", ["b.safetensors", 1, 1], mode=4, **lora_io)  # type: ignore[arg-type]
    ui.node(7, "CLIPTextEncode", ["neg"], inputs=[("clip", "CLIP")], outputs=["CONDITIONING"])
    ui.node(
        3,
        "KSampler",
        [1, "fixed", 20, 8, "euler", "normal", 1],
        inputs=[
            ("model", "MODEL"),
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("latent_image", "LATENT"),
        ],
        outputs=["LATENT"],
    )
    ui.link(4, 0, 11, 0)
    ui.link(4, 1, 11, 1)
    ui.link(11, 0, 12, 0)
    ui.link(11, 1, 12, 1)
    ui.link(12, 1, 7, 0)  # CLIP through two bypassed loras
    ui.link(12, 0, 3, 0)  # MODEL through two bypassed loras
    api = convert(ui, node_defs)
    assert "11" not in api and "12" not in api
    assert api["7"]["inputs"]["clip"] == ["4", 1]
    assert api["3"]["inputs"]["model"] == ["4", 0]


def test_bypass_prefers_the_same_slot_then_the_first_input_of_the_type(
    node_defs: Dict[str, Any],
) -> None:
    ui = UI()
    ui.node(1, "LoadImage", ["a.png", "image"], outputs=["IMAGE", "MASK"])
    ui.node(2, "LoadImage", ["b.png", "image"], outputs=["IMAGE", "MASK"])
    # ImageCompositeMasked(destination IMAGE, source IMAGE, mask MASK) → IMAGE, bypassed
    ui.node(
        10,
        "ImageCompositeMasked",
        [0, 0, False],
        mode=4,
        inputs=[("destination", "IMAGE"), ("source", "IMAGE"), ("mask", "MASK")],
        outputs=["IMAGE"],
    )
    # ImageToMask(image) → MASK, bypassed: no MASK input → consumers lose the input
    ui.node(11, "ImageToMask", ["red"], mode=4, inputs=[("image", "IMAGE")], outputs=["MASK"])
    # a made-up pass-through order: output 1 (IMAGE) with input 1 of type MASK
    ui.node(
        12,
        "ImageCompositeMasked",
        [0, 0, False],
        mode=4,
        inputs=[("mask", "MASK"), ("x", "MASK"), ("source", "IMAGE")],
        outputs=["MASK", "IMAGE"],
    )
    ui.node(20, "PreviewImage", None, inputs=[("images", "IMAGE")])
    ui.node(21, "MaskPreview", None, inputs=[("mask", "MASK")])
    ui.node(22, "PreviewImage", None, inputs=[("images", "IMAGE")])
    ui.link(1, 0, 10, 0)
    ui.link(2, 0, 10, 1)
    ui.link(10, 0, 20, 0)
    ui.link(1, 0, 11, 0)
    ui.link(11, 0, 21, 0)
    ui.link(2, 0, 12, 2)
    ui.link(12, 1, 22, 0)
    api = convert(ui, node_defs)
    assert api["20"]["inputs"] == {"images": ["1", 0]}  # same slot (0) first
    assert api["21"]["inputs"] == {}  # no input of type MASK: removed
    assert api["22"]["inputs"] == {"images": ["2", 0]}  # first IMAGE input


def test_bypassed_node_with_an_unlinked_input_leaves_the_input_absent(
    node_defs: Dict[str, Any],
) -> None:
    ui = UI()
    ui.node(11, "ImageInvert", None, mode=4, inputs=[("image", "IMAGE")], outputs=["IMAGE"])
    ui.node(20, "PreviewImage", None, inputs=[("images", "IMAGE")])
    ui.link(11, 0, 20, 0)
    assert convert(ui, node_defs)["20"]["inputs"] == {}


def test_notes_and_editor_only_nodes_are_dropped(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(50, "Note", ["remember"])
    ui.node(51, "MarkdownNote", ["# hi"])
    ui.node(52, "Label (rgthree)", None)
    api = convert(ui, node_defs)
    assert set(api) == {"4", "6"}


def test_nothing_to_run_is_refused(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(50, "Note", ["remember"])
    ui.node(4, "CheckpointLoaderSimple", ["m.safetensors"], mode=2)
    with pytest.raises(WorkflowFormatError, match="no node to run"):
        convert(ui, node_defs)


def test_unknown_classes_are_refused_naming_each_node(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(60, "DWPreprocessor", ["enable"], title="Pose")
    ui.node(61, "SAMLoader", [])
    ui.node(62, "MutedCustom", [], mode=2)  # muted and bypassed ones need no definition
    ui.node(63, "BypassedCustom", [], mode=4)
    with pytest.raises(WorkflowFormatError) as err:
        convert(ui, node_defs)
    message = str(err.value)
    assert "node 60 'Pose' (class 'DWPreprocessor')" in message
    assert "node 61 (class 'SAMLoader')" in message
    assert "install the custom nodes" in message
    assert "Muted" not in message and "Bypassed" not in message


@pytest.mark.parametrize("kind", ["WebcamCapture", "RecordAudio", "Load3D"])
def test_editor_only_widgets_are_refused(node_defs: Dict[str, Any], kind: str) -> None:
    ui = UI()
    chain(ui)
    ui.node(70, kind, ["", 512, 512, False])
    with pytest.raises(
        WorkflowFormatError,
        match=f"node 70 \\(class '{kind}'\\): input .* is filled in by the editor",
    ):
        convert(ui, node_defs)
    ui.nodes[-1]["mode"] = 2
    assert set(convert(ui, node_defs)) == {"4", "6"}


def test_group_nodes_are_refused(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    ui.node(80, "workflow>MyGroup", [1, 2])
    data = ui.data()
    data["extra"] = {"groupNodes": {"MyGroup": {"nodes": [], "links": []}}}
    with pytest.raises(
        WorkflowFormatError, match="node 80 .*legacy group node.*Convert to Subgraph"
    ):
        convert_ui_to_api(data, node_defs)


# ---------------------------------------------------------------- subgraphs


def _blur_subgraph(sub_id: str = "sub-blur", inner_mode: int = 0) -> Dict[str, Any]:
    """image → ImageBlur(blur_radius, sigma) → out; blur_radius and sigma promoted."""
    return {
        "id": sub_id,
        "name": "Blur",
        "inputs": [
            {"name": "image", "type": "IMAGE", "linkIds": [101]},
            {"name": "radius", "type": "INT", "linkIds": [102]},
            {"name": "sigma", "type": "FLOAT", "linkIds": [103]},
        ],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [104]}],
        "nodes": [
            {
                "id": 5,
                "type": "ImageBlur",
                "mode": inner_mode,
                "inputs": [
                    {"name": "image", "type": "IMAGE", "link": 101},
                    {
                        "name": "blur_radius",
                        "type": "INT",
                        "link": 102,
                        "widget": {"name": "blur_radius"},
                    },
                    {"name": "sigma", "type": "FLOAT", "link": 103, "widget": {"name": "sigma"}},
                ],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [104]}],
                "widgets_values": [1, 1.0],
            },
        ],
        "links": [
            {
                "id": 101,
                "origin_id": -10,
                "origin_slot": 0,
                "target_id": 5,
                "target_slot": 0,
                "type": "IMAGE",
            },
            {
                "id": 102,
                "origin_id": -10,
                "origin_slot": 1,
                "target_id": 5,
                "target_slot": 1,
                "type": "INT",
            },
            {
                "id": 103,
                "origin_id": -10,
                "origin_slot": 2,
                "target_id": 5,
                "target_slot": 2,
                "type": "FLOAT",
            },
            {
                "id": 104,
                "origin_id": 5,
                "origin_slot": 0,
                "target_id": -20,
                "target_slot": 0,
                "type": "IMAGE",
            },
        ],
    }


def _with_blur(mode: int = 0, wv: Any = (9, 2.5)) -> UI:
    ui = UI()
    ui.subgraphs.append(_blur_subgraph())
    ui.node(1, "LoadImage", ["a.png", "image"], outputs=["IMAGE", "MASK"])
    ui.node(
        12,
        "sub-blur",
        list(wv),
        mode=mode,
        title="My blur",
        inputs=[("image", "IMAGE")],
        outputs=["IMAGE"],
    )
    ui.node(20, "PreviewImage", None, inputs=[("images", "IMAGE")])
    ui.link(1, 0, 12, 0)
    ui.link(12, 0, 20, 0)
    return ui


def test_subgraph_is_expanded_with_prefixed_ids_and_promoted_values(
    node_defs: Dict[str, Any],
) -> None:
    api = convert(_with_blur(), node_defs)
    assert api == {
        "1": {
            "inputs": {"image": "a.png"},
            "class_type": "LoadImage",
            "_meta": {"title": "Load Image"},
        },
        "12:5": {
            "inputs": {"blur_radius": 9, "sigma": 2.5, "image": ["1", 0]},
            "class_type": "ImageBlur",
            "_meta": {"title": "ImageBlur"},
        },
        "20": {
            "inputs": {"images": ["12:5", 0]},
            "class_type": "PreviewImage",
            "_meta": {"title": "Preview Image"},
        },
    }


def test_subgraph_without_saved_promoted_values_uses_the_inner_widgets(
    node_defs: Dict[str, Any],
) -> None:
    api = convert(_with_blur(wv=()), node_defs)
    assert api["12:5"]["inputs"] == {"blur_radius": 1, "sigma": 1.0, "image": ["1", 0]}


def test_subgraph_input_linked_outside_wins_over_the_promoted_value(
    node_defs: Dict[str, Any],
) -> None:
    ui = _with_blur()
    ui.node(30, "PrimitiveInt", [4, "fixed"], outputs=["INT"])
    ui._find(12)["inputs"].append(
        {"name": "radius", "type": "INT", "link": None, "widget": {"name": "radius"}}
    )
    ui.link(30, 0, 12, 1)
    api = convert(ui, node_defs)
    assert api["12:5"]["inputs"]["blur_radius"] == ["30", 0]
    assert api["12:5"]["inputs"]["sigma"] == 2.5


def test_muted_subgraph_drops_its_inner_nodes(node_defs: Dict[str, Any]) -> None:
    api = convert(_with_blur(mode=2), node_defs)
    assert set(api) == {"1", "20"}
    assert api["20"]["inputs"] == {}


def test_bypassed_subgraph_passes_its_input_through(node_defs: Dict[str, Any]) -> None:
    api = convert(_with_blur(mode=4), node_defs)
    assert set(api) == {"1", "20"}
    assert api["20"]["inputs"] == {"images": ["1", 0]}


def test_bypassed_node_inside_a_subgraph(node_defs: Dict[str, Any]) -> None:
    ui = _with_blur()
    ui.subgraphs[0] = _blur_subgraph(inner_mode=4)
    api = convert(ui, node_defs)
    assert set(api) == {"1", "20"}
    assert api["20"]["inputs"] == {"images": ["1", 0]}


def test_nested_subgraphs_get_nested_ids(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.subgraphs.append(_blur_subgraph())
    ui.subgraphs.append(
        {
            "id": "sub-outer",
            "name": "Outer",
            "inputs": [{"name": "image", "type": "IMAGE", "linkIds": [201]}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [202]}],
            "nodes": [
                {
                    "id": 3,
                    "type": "sub-blur",
                    "mode": 0,
                    "inputs": [{"name": "image", "type": "IMAGE", "link": 201}],
                    "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [202]}],
                    "widgets_values": [5, 0.5],
                }
            ],
            "links": [
                {
                    "id": 201,
                    "origin_id": -10,
                    "origin_slot": 0,
                    "target_id": 3,
                    "target_slot": 0,
                    "type": "IMAGE",
                },
                {
                    "id": 202,
                    "origin_id": 3,
                    "origin_slot": 0,
                    "target_id": -20,
                    "target_slot": 0,
                    "type": "IMAGE",
                },
            ],
        }
    )
    ui.node(1, "LoadImage", ["a.png", "image"], outputs=["IMAGE", "MASK"])
    ui.node(40, "sub-outer", [], inputs=[("image", "IMAGE")], outputs=["IMAGE"])
    ui.node(20, "PreviewImage", None, inputs=[("images", "IMAGE")])
    ui.link(1, 0, 40, 0)
    ui.link(40, 0, 20, 0)
    api = convert(ui, node_defs)
    assert api["40:3:5"]["inputs"] == {"blur_radius": 5, "sigma": 0.5, "image": ["1", 0]}
    assert api["20"]["inputs"] == {"images": ["40:3:5", 0]}
    assert set(api) == {"1", "40:3:5", "20"}


def test_subgraph_with_unmappable_widget_values_is_refused(node_defs: Dict[str, Any]) -> None:
    with pytest.raises(WorkflowFormatError) as err:
        convert(_with_blur(wv=(9, 2.5, "extra")), node_defs)
    message = str(err.value)
    assert "node 12 'My blur'" in message and "subgraph 'Blur'" in message
    assert "3 saved widget values for 2 promoted inputs ['radius', 'sigma']" in message


def test_subgraph_unknown_inner_class_names_the_prefixed_id(node_defs: Dict[str, Any]) -> None:
    ui = _with_blur()
    ui.subgraphs[0]["nodes"][0]["type"] = "CustomBlur"
    with pytest.raises(WorkflowFormatError, match="node 12:5 \\(class 'CustomBlur'\\)"):
        convert(ui, node_defs)


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda d: d.update(nodes={}), "is this an API-format workflow"),
        (lambda d: d["nodes"].append({"id": 1}), "malformed node"),
        (lambda d: d["nodes"].append("x"), "malformed node"),
        (lambda d: d.update(links={}), "'links' must be a list"),
        (lambda d: d["links"].append([1, 2]), "malformed link"),
        (lambda d: d["links"].append({"id": 1}), "malformed link"),
        (lambda d: d.update(definitions={"subgraphs": {}}), "must be a list"),
        (lambda d: d.update(definitions={"subgraphs": [{"name": "x"}]}), "needs an 'id'"),
    ],
)
def test_malformed_ui_files_are_refused(node_defs: Dict[str, Any], mutate: Any, words: str) -> None:
    ui = UI()
    chain(ui)
    data = copy.deepcopy(ui.data())
    mutate(data)
    with pytest.raises(WorkflowFormatError, match=words):
        convert_ui_to_api(data, node_defs)


def test_bad_arguments_are_refused(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    chain(ui)
    # the one normaliser takes an API-format workflow as it is
    assert convert_ui_to_api({"1": {"class_type": "X"}}, node_defs) == {"1": {"class_type": "X"}}
    with pytest.raises(WorkflowFormatError, match="node_defs is empty"):
        convert_ui_to_api(ui.data(), {})
    with pytest.raises(WorkflowFormatError, match="node_defs must map class_type"):
        convert_ui_to_api(ui.data(), [1, 2])  # type: ignore[arg-type]


def test_result_shares_nothing_with_the_input(node_defs: Dict[str, Any]) -> None:
    ui = UI()
    ui.node(1, "PrimitiveNode", [[1, 2]], outputs=["*"])
    ui.node(2, "PreviewAny", None, inputs=[("source", "*")])
    ui.link(1, 0, 2, 0)
    data = ui.data()
    before = copy.deepcopy(data)
    api = convert_ui_to_api(data, node_defs)
    assert api["2"]["inputs"] == {"source": {"__value__": [1, 2]}}  # not a link
    api["2"]["inputs"]["source"]["__value__"].append(3)
    assert data == before


def test_subgraph_that_contains_itself_is_refused(node_defs: Dict[str, Any]) -> None:
    ui = _with_blur()
    ui.subgraphs[0]["nodes"].append(
        {"id": 6, "type": "sub-blur", "mode": 0, "inputs": [], "outputs": []}
    )
    with pytest.raises(WorkflowFormatError, match="nested more than 32 levels"):
        convert(ui, node_defs)


def test_subgraph_with_malformed_nodes_is_refused(node_defs: Dict[str, Any]) -> None:
    ui = _with_blur()
    ui.subgraphs[0]["nodes"] = {}
    with pytest.raises(WorkflowFormatError, match="subgraph 'Blur': 'nodes' must be a list"):
        convert(ui, node_defs)
