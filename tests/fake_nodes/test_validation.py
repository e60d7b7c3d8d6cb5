"""validate_prompt against the real server's answers (submit_validation_errors.jsonl) and
every error type of ComfyUI v0.3.64's validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import pytest

from comfysync.testing._builtin_nodes import STOCK_NODES
from comfysync.testing._nodes import NodeRegistry, default_registry
from comfysync.testing._validation import ValidationResult, validate_node_input, validate_prompt

RECORDING = Path(__file__).resolve().parent / "data" / "submit_validation_errors.jsonl"


def _recorded_submissions() -> List[Dict[str, Any]]:
    exchanges = []
    with RECORDING.open(encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            if event["dir"] == "http" and event["data"]["request"]["path"] == "/prompt":
                exchanges.append(event["data"])
    return exchanges


def _normalized(body: Dict[str, Any]) -> Dict[str, Any]:
    """ComfyUI iterates a node's inputs as a set (random order) and tracebacks name files:
    sort errors, and keep only the traceback's last line of code."""
    body = copy.deepcopy(body)
    for entry in body["node_errors"].values():
        entry["errors"].sort(key=lambda e: (e["type"], e["details"]))
        for error in entry["errors"]:
            tb = error["extra_info"].get("traceback")
            if tb is not None:
                assert isinstance(tb, list) and all(isinstance(x, str) for x in tb)
                error["extra_info"]["traceback"] = "<traceback>"
    return body


def _validate(prompt: Dict[str, Any], targets: Optional[List[str]] = None) -> ValidationResult:
    return validate_prompt(prompt, default_registry(), targets)


def _body(result: ValidationResult) -> Dict[str, Any]:
    return {"error": result.error, "node_errors": result.node_errors}


RECORDED = [x for x in _recorded_submissions() if isinstance(x["body"], dict)]


@pytest.mark.parametrize("exchange", RECORDED, ids=[x["body"]["error"]["type"] for x in RECORDED])
def test_recorded_rejections_are_reproduced(exchange: Dict[str, Any]) -> None:
    request = exchange["request"]["json"]
    if "prompt" not in request:  # the server's own check, before validation
        assert exchange["body"]["error"]["type"] == "no_prompt"
        return
    result = _validate(request["prompt"])
    assert exchange["status"] == 400 and not result.ok
    assert _normalized(_body(result)) == _normalized(exchange["body"])
    assert json.loads(json.dumps(_body(result))) == _body(result)  # plain JSON


def test_dangling_link_traceback_points_at_the_lookup() -> None:
    prompt = {"2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}}}
    error = _validate(prompt).node_errors["2"]["errors"][0]
    assert error["extra_info"]["exception_type"] == "KeyError"
    assert error["extra_info"]["traceback"][-1].startswith("  File ")
    assert "graph[source_id]" in error["extra_info"]["traceback"][-1]


def test_ui_format_workflow_raises_like_the_real_server() -> None:
    """The recording shows a 500 for a UI workflow posted as a prompt: validation raises."""
    posted = [x for x in _recorded_submissions() if x["status"] == 500]
    ui_prompt = posted[-1]["request"]["json"]["prompt"]
    with pytest.raises(TypeError):
        _validate(ui_prompt)


def test_missing_class_type() -> None:
    result = _validate({"5": {"inputs": {}}})
    assert _body(result) == {
        "error": {
            "type": "invalid_prompt",
            "message": "Cannot execute because a node is missing the class_type property.",
            "details": "Node ID '#5'",
            "extra_info": {},
        },
        "node_errors": {},
    }


def _empty_image(**inputs: Any) -> Dict[str, Any]:
    values = {"width": 8, "height": 8, "batch_size": 1, "color": 0}
    values.update(inputs)
    return {"class_type": "EmptyImage", "inputs": values}


def _save(source: Union[str, List[Any]], prefix: str = "t") -> Dict[str, Any]:
    images = [source, 0] if isinstance(source, str) else source
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


def _errors_of(result: ValidationResult, node_id: str) -> List[Dict[str, Any]]:
    errors: List[Dict[str, Any]] = result.node_errors[node_id]["errors"]
    return errors


def test_valid_prompt_is_coerced_into_a_copy() -> None:
    prompt = {
        "1": _empty_image(width="16", height=8.9, color={"__value__": 3}),
        "2": {
            "class_type": "ProbeSleep",
            "inputs": {"image": ["1", 0], "seconds": 1, "seed": "7"},
        },
        "3": {"class_type": "ProbeText", "inputs": {"text": 5, "image": ["2", 0]}},
        "4": _empty_image(width="not validated: unreachable"),
    }
    original = copy.deepcopy(prompt)
    result = _validate(prompt)
    assert result.ok and result.error is None and result.node_errors == {}
    assert result.outputs == ["3"]
    assert prompt == original
    inputs = {k: v["inputs"] for k, v in result.prompt.items()}
    assert inputs["1"] == {"width": 16, "height": 8, "batch_size": 1, "color": 3}
    assert inputs["2"]["seconds"] == 1.0 and isinstance(inputs["2"]["seconds"], float)
    assert inputs["2"]["seed"] == 7
    assert inputs["3"]["text"] == "5"
    assert inputs["4"]["width"] == "not validated: unreachable"


def test_boolean_coercion_is_python_bool() -> None:
    prompt = {
        "1": _empty_image(),
        "2": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "a",
                "fps": "6",
                "lossless": "false",
                "quality": 80,
                "method": "default",
            },
        },
    }
    result = _validate(prompt)
    assert result.ok
    assert result.prompt["2"]["inputs"]["lossless"] is True  # bool("false"), as ComfyUI
    assert result.prompt["2"]["inputs"]["fps"] == 6.0


def test_required_input_missing_and_range_errors() -> None:
    progress = {
        "class_type": "ProbeProgress",
        "inputs": {"image": ["1", 0], "steps": 0, "delay_ms": 700000, "seed": 0},
    }
    result = _validate({"1": _empty_image(), "2": progress, "3": _save("2")})
    assert not result.ok
    assert _errors_of(result, "2") == [
        {
            "type": "value_smaller_than_min",
            "message": "Value 0 smaller than min of 1",
            "details": "steps",
            "extra_info": {
                "input_name": "steps",
                "input_config": ["INT", {"default": 5, "min": 1, "max": 100000}],
                "received_value": 0,
            },
        },
        {
            "type": "value_bigger_than_max",
            "message": "Value 700000 bigger than max of 600000",
            "details": "delay_ms",
            "extra_info": {
                "input_name": "delay_ms",
                "input_config": ["INT", {"default": 10, "min": 0, "max": 600000}],
                "received_value": 700000,
            },
        },
        {
            "type": "required_input_missing",
            "message": "Required input is missing",
            "details": "preview",
            "extra_info": {"input_name": "preview"},
        },
    ]
    # the error is upstream of the output: details stay empty, the output is not reported
    assert result.error == {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    }
    assert set(result.node_errors) == {"2"}
    assert result.node_errors["2"]["dependent_outputs"] == ["3"]
    assert result.node_errors["2"]["class_type"] == "ProbeProgress"


def test_float_conversion_message() -> None:
    sleep = {"class_type": "ProbeSleep", "inputs": {"image": ["1", 0], "seconds": "abc", "seed": 0}}
    result = _validate({"1": _empty_image(), "2": sleep, "3": _save("2")})
    assert _errors_of(result, "2") == [
        {
            "type": "invalid_input_type",
            "message": "Failed to convert an input value to a FLOAT value",
            "details": "seconds, abc, could not convert string to float: 'abc'",
            "extra_info": {
                "input_name": "seconds",
                "input_config": [
                    "FLOAT",
                    {"default": 1.0, "min": 0.0, "max": 3600.0, "step": 0.01},
                ],
                "received_value": "abc",
                "exception_message": "could not convert string to float: 'abc'",
            },
        }
    ]


def test_errors_on_the_output_node_fill_the_top_level_details() -> None:
    text = {"class_type": "ProbeText", "inputs": {"text": "x", "image": ["1", 0, 0]}}
    result = _validate({"1": _empty_image(), "2": text})
    assert _errors_of(result, "2") == [
        {
            "type": "bad_linked_input",
            "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
            "details": "image",
            "extra_info": {
                "input_name": "image",
                "input_config": ["IMAGE", {}],
                "received_value": ["1", 0, 0],
            },
        }
    ]
    assert result.error is not None
    assert result.error["details"] == (
        "Bad linked input, must be a length-2 list of [node_id, slot_index]: image"
    )


def test_return_type_mismatch() -> None:
    checkpoint = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x"}}
    result = _validate({"1": checkpoint, "2": _save(["1", 2])})
    assert _errors_of(result, "2") == [
        {
            "type": "return_type_mismatch",
            "message": "Return type mismatch between linked nodes",
            "details": "images, received_type(VAE) mismatch input_type(IMAGE)",
            "extra_info": {
                "input_name": "images",
                "input_config": ["IMAGE", {"tooltip": "The images to save."}],
                "received_type": "VAE",
                "linked_node": ["1", 2],
            },
        }
    ]
    # the mismatching link is not followed: the bad checkpoint name is not reported
    assert set(result.node_errors) == {"2"}


def test_value_not_in_short_and_long_lists() -> None:
    registry = default_registry({"checkpoints": [f"m{i}.safetensors" for i in range(21)]})
    progress = {
        "class_type": "ProbeProgress",
        "inputs": {"image": ["1", 0], "steps": 1, "delay_ms": 0, "preview": "GIF", "seed": 0},
    }
    checkpoint = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nope"}}
    prompt = {
        "1": _empty_image(),
        "2": progress,
        "3": _save("2"),
        "4": checkpoint,
        "5": {"class_type": "VAEDecode", "inputs": {"vae": ["4", 2], "samples": ["6", 0]}},
        "6": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "7": _save("5"),
    }
    result = validate_prompt(prompt, registry)
    assert _errors_of(result, "2") == [
        {
            "type": "value_not_in_list",
            "message": "Value not in list",
            "details": "preview: 'GIF' not in ['none', 'JPEG', 'PNG']",
            "extra_info": {
                "input_name": "preview",
                "input_config": [["none", "JPEG", "PNG"], {"default": "none"}],
                "received_value": "GIF",
            },
        }
    ]
    assert _errors_of(result, "4") == [
        {
            "type": "value_not_in_list",
            "message": "Value not in list",
            "details": "ckpt_name: 'nope' not in (list of length 21)",
            "extra_info": {
                "input_name": "ckpt_name",
                "input_config": None,
                "received_value": "nope",
            },
        }
    ]


def test_custom_validation_of_load_image(tmp_path: Path) -> None:
    (tmp_path / "there.png").write_bytes(b"x")
    registry = default_registry(input_dir=tmp_path)

    def prompt(name: str) -> Dict[str, Any]:
        return {"1": {"class_type": "LoadImage", "inputs": {"image": name}}, "2": _save("1")}

    assert validate_prompt(prompt("there.png"), registry).ok
    # LoadImage's VALIDATE_INPUTS takes `image`: no combo check, files in subfolders pass
    (tmp_path / "clipspace").mkdir()
    (tmp_path / "clipspace" / "m.png").write_bytes(b"x")
    assert validate_prompt(prompt("clipspace/m.png [input]"), registry).ok
    result = validate_prompt(prompt("missing.png"), registry)
    assert result.node_errors["1"]["errors"] == [
        {
            "type": "custom_validation_failed",
            "message": "Custom validation failed for node",
            "details": "image - Invalid image file: missing.png",
            "extra_info": {"input_name": "image"},
        }
    ]
    assert not validate_prompt(prompt("../outside.png"), registry).ok


class Picky:
    """VALIDATE_INPUTS naming `count` (so its range is not checked) and taking input_types."""

    seen: List[Dict[str, Any]] = []

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "count": ("INT", {"default": 1, "min": 1, "max": 3}),
                "label": ("STRING", {}),
            },
            "hidden": {"uid": "UNIQUE_ID", "prompt": "PROMPT"},
        }

    RETURN_TYPES = ()
    FUNCTION = "go"
    OUTPUT_NODE = True

    @classmethod
    def VALIDATE_INPUTS(
        cls, image: Any, count: int, uid: str, prompt: Any, input_types: Dict[str, Any]
    ) -> Union[bool, str]:
        cls.seen.append(
            {"image": image, "count": count, "uid": uid, "prompt": prompt, "types": input_types}
        )
        return True if count < 10 else f"count {count} is silly"

    def go(self, **kwargs: Any) -> Dict[str, Any]:
        return {"ui": {}}


def test_custom_validation_arguments_and_failure() -> None:
    registry = default_registry()
    registry.register("Picky", Picky)
    Picky.seen.clear()
    ok = {
        "1": _empty_image(),
        "2": {"class_type": "Picky", "inputs": {"image": ["1", 0], "count": 5, "label": "x"}},
    }
    assert validate_prompt(ok, registry).ok  # 5 > max 3 but VALIDATE_INPUTS owns `count`
    assert Picky.seen == [
        {"image": None, "count": 5, "uid": "2", "prompt": {}, "types": {"image": "IMAGE"}}
    ]
    bad = copy.deepcopy(ok)
    bad["2"]["inputs"]["count"] = 12
    result = validate_prompt(bad, registry)
    # one error per argument passed (input_types included), as ComfyUI reports it
    assert [e["details"] for e in _errors_of(result, "2")] == [
        "image - count 12 is silly",
        "count - count 12 is silly",
        "uid - count 12 is silly",
        "prompt - count 12 is silly",
        "input_types - count 12 is silly",
    ]
    assert result.error is not None
    assert result.error["details"].split("\n")[0] == (
        "Custom validation failed for node: image - count 12 is silly"
    )


class FalseValidator(Picky):
    @classmethod
    def VALIDATE_INPUTS(cls, label: str) -> bool:  # type: ignore[override]
        return False


def test_custom_validation_returning_false_names_only_the_input() -> None:
    registry = NodeRegistry()
    registry.register("EmptyImage", STOCK_NODES["EmptyImage"])
    registry.register("F", FalseValidator)
    node: Dict[str, Any] = {
        "class_type": "F",
        "inputs": {"image": ["1", 0], "count": 2, "label": "l"},
    }
    prompt = {"1": _empty_image(), "2": node}
    result = validate_prompt(prompt, registry)
    assert _errors_of(result, "2") == [
        {
            "type": "custom_validation_failed",
            "message": "Custom validation failed for node",
            "details": "label",
            "extra_info": {"input_name": "label"},
        }
    ]
    # `count` is not an argument of this VALIDATE_INPUTS: its range is checked
    node["inputs"]["count"] = 9
    types = [e["type"] for e in _errors_of(validate_prompt(prompt, registry), "2")]
    assert types == ["value_bigger_than_max", "custom_validation_failed"]


def test_exception_in_an_upstream_node_is_inner() -> None:
    prompt = {
        "1": {"class_type": "ProbeSleep", "inputs": {"image": ["42", 0], "seconds": 0, "seed": 0}},
        "2": _save("1"),
    }
    result = _validate(prompt)
    assert set(result.node_errors) == {"1"}
    (error,) = _errors_of(result, "1")
    assert error["type"] == "exception_during_inner_validation"
    assert error["message"] == "Exception when validating inner node"
    assert error["details"] == "'42'"
    info = error["extra_info"]
    assert list(info) == [
        "input_name",
        "input_config",
        "exception_message",
        "exception_type",
        "traceback",
        "linked_node",
    ]
    assert info["input_name"] == "images"
    assert info["input_config"] == ["IMAGE", {"tooltip": "The images to save."}]
    assert info["exception_message"] == "'42'" and info["exception_type"] == "KeyError"
    assert info["linked_node"] == ["1", 0]
    assert result.error is not None and result.error["details"] == ""


def test_some_outputs_failing_is_a_success_with_node_errors() -> None:
    prompt = {
        "1": _empty_image(),
        "2": _save("1"),
        "3": _empty_image(width=0),
        "4": _save("3"),
    }
    result = _validate(prompt)
    assert result.ok and result.error is None
    assert result.outputs == ["2"]
    assert list(result.node_errors) == ["3"]
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]


def test_dependent_outputs_accumulate_like_comfyui() -> None:
    prompt = {
        "1": _empty_image(width=0),
        "2": _save("1"),
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "4": _empty_image(height=0),
        "5": _save("4"),
    }
    result = _validate(prompt)
    assert not result.ok
    assert result.node_errors["1"]["dependent_outputs"] == ["2", "3", "5"]
    assert result.node_errors["4"]["dependent_outputs"] == ["5"]


def test_partial_execution_targets() -> None:
    prompt = {"1": _empty_image(), "2": _save("1"), "3": _save("1"), "4": _empty_image(width=-1)}
    assert _validate(prompt, ["3"]).outputs == ["3"]
    assert _validate(prompt, ["3", "2"]).outputs == ["2", "3"]
    result = _validate(prompt, ["1", "4"])  # not output nodes: ignored
    assert result.error == {
        "type": "prompt_no_outputs",
        "message": "Prompt has no outputs",
        "details": "",
        "extra_info": {},
    }
    # an unknown class anywhere still fails, whatever the targets
    prompt["9"] = {"class_type": "Nope", "inputs": {}}
    error = _validate(prompt, ["2"]).error
    assert error is not None and error["type"] == "invalid_prompt"


def test_literal_list_must_be_wrapped() -> None:
    text = {"class_type": "ProbeText", "inputs": {"text": {"__value__": ["a", "b"]}}}
    result = _validate({"1": text})
    assert result.ok and result.prompt["1"]["inputs"]["text"] == "['a', 'b']"
    raw = _validate({"1": {"class_type": "ProbeText", "inputs": {"text": ["a", "b", "c"]}}})
    assert _errors_of(raw, "1")[0]["type"] == "bad_linked_input"


@pytest.mark.parametrize(
    "received, accepted, strict, expected",
    [
        ("IMAGE", "IMAGE", False, True),
        ("IMAGE", "MASK", False, False),
        ("INT,FLOAT", "FLOAT", False, True),
        ("INT,FLOAT", "FLOAT", True, False),
        ("FLOAT", "INT, FLOAT", True, True),
        (["a"], "STRING", False, False),
        ("*", "IMAGE", False, False),
    ],
)
def test_link_type_check(received: Any, accepted: Any, strict: bool, expected: bool) -> None:
    assert validate_node_input(received, accepted, strict) is expected
