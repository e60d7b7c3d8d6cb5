"""NodeRegistry and /object_info: the real v0.3.64 definitions for stock and probe nodes, the
real shape for user nodes, per-server combos."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from comfysync.testing._builtin_nodes import PROBE_NODES, STOCK_NODES
from comfysync.testing._builtin_nodes._common import DATA_FILE
from comfysync.testing._nodes import (
    DEFAULT_CHECKPOINTS,
    MODEL_FOLDERS,
    NodeRegistry,
    default_registry,
    node_info,
)

HERE = Path(__file__).resolve().parent
SHARED_OBJECT_INFO = HERE.parents[2] / "shared" / "protocol" / "object_info_v0.3.64.json"

#: combos that list the server's files or models, not part of the static definition
DYNAMIC = {
    "LoadImage": "image",
    "LoadImageMask": "image",
    "CheckpointLoaderSimple": "ckpt_name",
    "LoraLoader": "lora_name",
}

REAL_KEYS = [
    "input",
    "input_order",
    "output",
    "output_is_list",
    "output_name",
    "name",
    "display_name",
    "description",
    "python_module",
    "category",
    "output_node",
]


def _stock_data() -> Dict[str, Any]:
    with DATA_FILE.open(encoding="utf-8") as f:
        data: Dict[str, Any] = json.load(f)
    return data


def _without_dynamic(class_type: str, info: Dict[str, Any]) -> Dict[str, Any]:
    info = copy.deepcopy(info)
    if class_type in DYNAMIC:
        info["input"]["required"][DYNAMIC[class_type]][0] = "<files>"
    return info


def test_stock_nodes_serve_the_real_definitions() -> None:
    registry = default_registry()
    data = _stock_data()
    assert set(data) == set(STOCK_NODES)
    for class_type in STOCK_NODES:
        served = registry.object_info(class_type)[class_type]
        assert _without_dynamic(class_type, served) == _without_dynamic(
            class_type, data[class_type]
        ), class_type
        assert list(served)[: len(REAL_KEYS)] == REAL_KEYS  # the real key order


@pytest.mark.skipif(not SHARED_OBJECT_INFO.is_file(), reason="shared protocol data absent")
def test_data_file_is_the_recorded_object_info() -> None:
    with SHARED_OBJECT_INFO.open(encoding="utf-8") as f:
        recorded = json.load(f)
    for class_type, definition in _stock_data().items():
        assert definition == recorded[class_type], class_type


def test_probe_nodes_generate_the_recorded_definitions() -> None:
    with (HERE / "data" / "probe_object_info.json").open(encoding="utf-8") as f:
        recorded = json.load(f)
    info = default_registry().object_info()
    assert set(PROBE_NODES) == set(recorded)
    for class_type in PROBE_NODES:
        assert info[class_type] == recorded[class_type], class_type


def test_object_info_of_all_and_of_unknown() -> None:
    registry = default_registry()
    everything = registry.object_info()
    assert list(everything) == registry.class_types()
    assert set(everything) == set(STOCK_NODES) | set(PROBE_NODES)
    assert registry.object_info("NoSuchNode") == {}
    assert "NoSuchNode" not in registry and "KSampler" in registry
    assert registry.get("NoSuchNode") is None
    assert len(registry) == len(everything)


def test_model_combos_follow_registry_models() -> None:
    registry = default_registry({"loras": ["a.safetensors"], "checkpoints": ["x.ckpt"]})
    assert list(registry.models) == list(MODEL_FOLDERS)
    assert registry.models["checkpoints"] == ["x.ckpt"]
    assert registry.models["vae"] == []

    def combo(class_type: str) -> Any:
        return registry.object_info(class_type)[class_type]["input"]["required"][
            DYNAMIC[class_type]
        ][0]

    assert combo("CheckpointLoaderSimple") == ["x.ckpt"]
    assert combo("LoraLoader") == ["a.safetensors"]
    registry.models["loras"].append("b.safetensors")  # read at call time
    assert combo("LoraLoader") == ["a.safetensors", "b.safetensors"]


def test_default_models_and_fresh_registries() -> None:
    first, second = default_registry(), default_registry()
    assert first.models["checkpoints"] == list(DEFAULT_CHECKPOINTS)
    first.models["checkpoints"].append("mine.safetensors")
    assert second.models["checkpoints"] == list(DEFAULT_CHECKPOINTS)
    first.register("Extra", PROBE_NODES["ProbeText"])
    assert "Extra" not in second


def test_load_image_combo_lists_input_images_at_call_time(tmp_path: Path) -> None:
    registry = default_registry(input_dir=tmp_path)

    def combos() -> Tuple[Any, Any]:
        info = registry.object_info()
        return (
            info["LoadImage"]["input"]["required"]["image"],
            info["LoadImageMask"]["input"]["required"]["image"][0],
        )

    assert combos() == ([[], {"image_upload": True}], [])
    for name in ("b.png", "a.jpg", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    image_combo, mask_combo = combos()
    assert image_combo == [["a.jpg", "b.png", "c.webp"], {"image_upload": True}]
    assert mask_combo == ["a.jpg", "b.png", "c.webp", "notes.txt"]


class Blur:
    """A user node in ComfyUI's shape."""

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "radius": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 50.0}),
                "mode": (["box", "gauss"],),
            },
            "optional": {"mask": ("MASK",)},
            "hidden": {"node_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("blurred", "count")
    OUTPUT_IS_LIST = (False, True)
    FUNCTION = "blur"
    CATEGORY = "image/filter"
    DESCRIPTION = "Blurs."

    def blur(self, image: Any, radius: float, mode: str, **kwargs: Any) -> Tuple[Any, int]:
        return (image, 1)


class Minimal:
    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "go"
    OUTPUT_NODE = True
    DEPRECATED = True
    EXPERIMENTAL = True
    OUTPUT_TOOLTIPS = ()

    def go(self) -> Tuple[()]:
        return ()


def test_user_node_definition_has_the_real_shape() -> None:
    registry = NodeRegistry()
    registry.register("Blur", Blur, display_name="Blur Image")
    info = registry.object_info("Blur")["Blur"]
    assert info == {
        "input": {
            "required": {
                "image": ["IMAGE"],
                "radius": ["FLOAT", {"default": 2.0, "min": 0.0, "max": 50.0}],
                "mode": [["box", "gauss"]],
            },
            "optional": {"mask": ["MASK"]},
            "hidden": {"node_id": "UNIQUE_ID"},
        },
        "input_order": {
            "required": ["image", "radius", "mode"],
            "optional": ["mask"],
            "hidden": ["node_id"],
        },
        "output": ["IMAGE", "INT"],
        "output_is_list": [False, True],
        "output_name": ["blurred", "count"],
        "name": "Blur",
        "display_name": "Blur Image",
        "description": "Blurs.",
        "python_module": f"custom_nodes.{__name__}",
        "category": "image/filter",
        "output_node": False,
    }
    assert registry.display_name("Blur") == "Blur Image"


def test_user_node_defaults_and_flags() -> None:
    info = node_info("Minimal", Minimal)
    assert info["display_name"] == "Minimal"
    assert info["category"] == "sd"
    assert info["description"] == ""
    assert info["output_node"] is True
    assert info["output_tooltips"] == []
    assert info["deprecated"] is True and info["experimental"] is True
    assert "api_node" not in info


def test_a_failing_definition_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Minimal):
        @classmethod
        def INPUT_TYPES(cls) -> Dict[str, Any]:
            raise RuntimeError("no inputs today")

    registry = NodeRegistry()
    registry.register("Broken", Broken)
    registry.register("Minimal", Minimal)
    assert list(registry.object_info()) == ["Minimal"]
    assert "Broken" in caplog.text


@pytest.mark.parametrize(
    "class_type, cls, message",
    [
        ("", Minimal, "non-empty"),
        ("X", Minimal(), "expected a node class"),
        ("X", type("NoInputs", (), {"RETURN_TYPES": (), "FUNCTION": "f"}), "INPUT_TYPES"),
        ("X", type("NoFn", (Minimal,), {"FUNCTION": "missing"}), "FUNCTION"),
        ("X", type("BadRet", (Minimal,), {"RETURN_TYPES": "IMAGE"}), "RETURN_TYPES"),
    ],
)
def test_register_rejects_what_is_not_a_node_class(class_type: str, cls: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        NodeRegistry().register(class_type, cls)


def test_register_replaces_and_keeps_order() -> None:
    registry = NodeRegistry()
    registry.register("A", Minimal)
    registry.register("B", Blur)
    registry.register("A", Blur)
    assert registry.class_types() == ["A", "B"]
    assert registry.get("A") is Blur
    assert list(registry) == ["A", "B"]
