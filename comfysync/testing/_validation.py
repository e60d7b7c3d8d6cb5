"""``POST /prompt`` validation, as ComfyUI v0.3.64's ``execution.validate_prompt`` does it.

Same checks, same order, same error ``type``/``message``/``details``/``extra_info`` strings
(the recorded bodies in ``submit_validation_errors.jsonl`` are the reference), same quirks:

* every node needs a known ``class_type`` (else a top-level ``invalid_prompt``), but only
  nodes reachable from an output node are validated;
* widget values are unwrapped from ``{"__value__": ...}`` and coerced (``int()``,
  ``float()``, ``str()``, ``bool()``) into the returned copy of the prompt;
* a node invalid only because something upstream is invalid gets no ``node_errors`` entry;
  each entry's ``dependent_outputs`` gains every output that failed after the entry was
  found (ComfyUI appends to all entries, related or not);
* exceptions while validating (a link to a missing node is a ``KeyError``) become
  ``exception_during_validation`` / ``exception_during_inner_validation`` with the Python
  traceback;
* some outputs failing while others pass is a success with ``node_errors``.

Where ComfyUI iterates a ``set`` (inputs of a node, output nodes) and so has no stable order,
we use declaration order and prompt order.

A prompt that is not a JSON object of node objects makes ComfyUI raise (the server answers
500); :func:`validate_prompt` raises the same Python exceptions.
"""

from __future__ import annotations

import copy
import inspect
import traceback
from typing import Any, Dict, List, Optional, Tuple

from attrs import define

from ._node_calls import full_type_name
from ._nodes import NodeRegistry

#: One error dict: ``{"type", "message", "details", "extra_info"}``.
ErrorDict = Dict[str, Any]
#: (valid, errors, node id) per validated node, as ComfyUI's ``validated`` cache.
_Verdict = Tuple[bool, List[ErrorDict], Any]


@define(frozen=True)
class ValidationResult:
    """What ``POST /prompt`` needs: queue the prompt when ``ok`` (answer 200 with
    ``node_errors``), else answer 400 with ``{"error": error, "node_errors": node_errors}``."""

    ok: bool
    #: the top-level error (``None`` when ok)
    error: Optional[ErrorDict]
    #: node id → ``{"errors": [...], "dependent_outputs": [...], "class_type": ...}``
    node_errors: Dict[str, Any]
    #: the output nodes that validated: what the executor should run
    outputs: List[str]
    #: a deep copy of the submitted prompt with widget values unwrapped and coerced
    prompt: Dict[str, Any]


def _top_error(type_: str, message: str, details: str) -> ErrorDict:
    return {"type": type_, "message": message, "details": details, "extra_info": {}}


def validate_prompt(
    prompt: Dict[str, Any],
    registry: NodeRegistry,
    partial_execution_targets: Optional[List[str]] = None,
) -> ValidationResult:
    """Validate an API-format prompt against ``registry``. See the module docstring."""
    graph: Any = copy.deepcopy(prompt)
    outputs: List[str] = []
    for node_id in graph:
        node = graph[node_id]
        if "class_type" not in node:
            return _failed(
                graph,
                _top_error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                ),
            )
        class_type = node["class_type"]
        node_class = registry.get(class_type)
        if node_class is None:
            return _failed(
                graph,
                _top_error(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'",
                ),
            )
        if getattr(node_class, "OUTPUT_NODE", False) is True:
            if partial_execution_targets is None or node_id in partial_execution_targets:
                if node_id not in outputs:
                    outputs.append(node_id)

    if not outputs:
        return _failed(graph, _top_error("prompt_no_outputs", "Prompt has no outputs", ""))

    good_outputs: List[str] = []
    failures: List[Tuple[str, List[ErrorDict]]] = []
    node_errors: Dict[str, Any] = {}
    validated: Dict[Any, _Verdict] = {}
    for output in outputs:
        try:
            valid, reasons, _ = _validate_inputs(graph, output, validated, registry)
        except Exception as ex:
            valid = False
            reasons = [_exception_error("exception_during_validation", ex, None)]
            validated[output] = (False, reasons, output)
        if valid:
            good_outputs.append(output)
            continue
        failures.append((output, reasons))
        for node_id, (node_valid, node_reasons, _) in validated.items():
            if node_valid or not node_reasons:
                continue  # invalid only because of something upstream: not reported
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": graph[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output)

    node_errors = _plain(node_errors)
    if not good_outputs:
        details = "\n".join(
            f"{error['message']}: {error['details']}" for _, errors in failures for error in errors
        )
        error = _top_error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", details
        )
        return ValidationResult(False, error, node_errors, [], graph)
    return ValidationResult(True, None, node_errors, good_outputs, graph)


def _failed(graph: Dict[str, Any], error: ErrorDict) -> ValidationResult:
    return ValidationResult(False, error, {}, [], graph)


def _exception_error(type_: str, ex: BaseException, inner: Optional[Dict[str, Any]]) -> ErrorDict:
    """``exception_during_validation`` (``inner`` None) or
    ``exception_during_inner_validation`` (``inner`` = input_name, input_config, linked_node),
    with ComfyUI's key order."""
    info: Dict[str, Any] = {}
    if inner is not None:
        info["input_name"] = inner["input_name"]
        info["input_config"] = inner["input_config"]
        info["exception_message"] = str(ex)
    info["exception_type"] = full_type_name(type(ex))
    info["traceback"] = traceback.format_tb(ex.__traceback__)
    if inner is not None:
        info["linked_node"] = inner["linked_node"]
        message = "Exception when validating inner node"
    else:
        message = "Exception when validating node"
    return {"type": type_, "message": message, "details": str(ex), "extra_info": info}


def validate_node_input(received_type: Any, input_type: Any, strict: bool = False) -> bool:
    """ComfyUI's link type check: equal, or (for ``"A,B"`` union strings) overlapping types —
    a subset in strict mode. Equality uses ``!=`` so ``__ne__``-overriding "any" types work."""
    if not received_type != input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    accepted = {t.strip() for t in input_type.split(",")}
    if strict:
        return received.issubset(accepted)
    return len(received & accepted) > 0


def _input_info(class_inputs: Dict[str, Any], name: str) -> Tuple[Any, Optional[str], Any]:
    """(type, category, options) of input ``name``, like ComfyUI's ``get_input_info``."""
    for category in ("required", "optional", "hidden"):
        section = class_inputs.get(category)
        if section is not None and name in section:
            spec = section[name]
            if category == "hidden":
                return spec, category, {}
            return spec[0], category, spec[1] if len(spec) > 1 else {}
    return None, None, None


def _coerce(input_type: Any, value: Any) -> Any:
    if input_type == "INT":
        return int(value)
    if input_type == "FLOAT":
        return float(value)
    if input_type == "STRING":
        return str(value)
    if input_type == "BOOLEAN":
        return bool(value)
    return value


def _validate_inputs(
    graph: Any, unique_id: Any, validated: Dict[Any, _Verdict], registry: NodeRegistry
) -> _Verdict:
    """ComfyUI's ``validate_inputs``: this node's inputs, recursing into linked nodes."""
    if unique_id in validated:
        return validated[unique_id]
    inputs = graph[unique_id]["inputs"]
    node_class: Any = registry.get(graph[unique_id]["class_type"])
    class_inputs = node_class.INPUT_TYPES()
    names = list(
        dict.fromkeys([*class_inputs.get("required", {}), *class_inputs.get("optional", {})])
    )

    validate_function = getattr(node_class, "VALIDATE_INPUTS", None)
    validate_args: List[str] = []
    validate_kwargs = False
    if validate_function is not None:
        spec = inspect.getfullargspec(validate_function)
        validate_args = spec.args
        validate_kwargs = spec.varkw is not None

    errors: List[ErrorDict] = []
    valid = True
    received_types: Dict[str, Any] = {}
    for name in names:
        input_type, category, options = _input_info(class_inputs, name)
        if name not in inputs:
            if category == "required":
                errors.append(
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": f"{name}",
                        "extra_info": {"input_name": name},
                    }
                )
            continue

        value = inputs[name]
        config = [input_type, options]
        if isinstance(value, list):
            if len(value) != 2:
                errors.append(
                    {
                        "type": "bad_linked_input",
                        "message": "Bad linked input, must be a length-2 list of "
                        "[node_id, slot_index]",
                        "details": f"{name}",
                        "extra_info": {
                            "input_name": name,
                            "input_config": config,
                            "received_value": value,
                        },
                    }
                )
                continue
            source_id = value[0]
            source_class: Any = registry.get(graph[source_id]["class_type"])
            received_type = source_class.RETURN_TYPES[value[1]]
            received_types[name] = received_type
            if "input_types" not in validate_args and not validate_node_input(
                received_type, input_type
            ):
                errors.append(
                    {
                        "type": "return_type_mismatch",
                        "message": "Return type mismatch between linked nodes",
                        "details": f"{name}, received_type({received_type}) "
                        f"mismatch input_type({input_type})",
                        "extra_info": {
                            "input_name": name,
                            "input_config": config,
                            "received_type": received_type,
                            "linked_node": value,
                        },
                    }
                )
                continue
            try:
                upstream = _validate_inputs(graph, source_id, validated, registry)
                if upstream[0] is False:
                    valid = False
            except Exception as ex:
                valid = False
                reason = _exception_error(
                    "exception_during_inner_validation",
                    ex,
                    {"input_name": name, "input_config": config, "linked_node": value},
                )
                validated[source_id] = (False, [reason], source_id)
            continue

        try:
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            coerced = _coerce(input_type, value)
            if coerced is not value:
                value = coerced
                inputs[name] = value
        except Exception as ex:
            errors.append(
                {
                    "type": "invalid_input_type",
                    "message": f"Failed to convert an input value to a {input_type} value",
                    "details": f"{name}, {value}, {ex}",
                    "extra_info": {
                        "input_name": name,
                        "input_config": config,
                        "received_value": value,
                        "exception_message": str(ex),
                    },
                }
            )
            continue

        if name in validate_args or validate_kwargs:
            continue  # the node's VALIDATE_INPUTS takes this input: no range/list checks
        range_error = _range_error(name, value, options, config)
        if range_error is not None:
            errors.append(range_error)
            continue
        if isinstance(input_type, list) and value not in input_type:
            listed: Any = config
            if len(input_type) > 20:  # ComfyUI does not echo long (model) lists
                list_info = f"(list of length {len(input_type)})"
                listed = None
            else:
                list_info = str(input_type)
            errors.append(
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"{name}: '{value}' not in {list_info}",
                    "extra_info": {
                        "input_name": name,
                        "input_config": listed,
                        "received_value": value,
                    },
                }
            )

    if validate_function is not None and (validate_args or validate_kwargs):
        errors.extend(
            _custom_validation(
                node_class,
                class_inputs,
                inputs,
                unique_id,
                validate_args,
                validate_kwargs,
                received_types,
            )
        )

    verdict: _Verdict = (False, errors, unique_id) if errors or not valid else (True, [], unique_id)
    validated[unique_id] = verdict
    return verdict


def _range_error(name: str, value: Any, options: Any, config: Any) -> Optional[ErrorDict]:
    if "min" in options and value < options["min"]:
        type_, message = (
            "value_smaller_than_min",
            f"Value {value} smaller than min of {options['min']}",
        )
    elif "max" in options and value > options["max"]:
        type_, message = (
            "value_bigger_than_max",
            f"Value {value} bigger than max of {options['max']}",
        )
    else:
        return None
    return {
        "type": type_,
        "message": message,
        "details": f"{name}",
        "extra_info": {"input_name": name, "input_config": config, "received_value": value},
    }


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
    )


#: hidden input kinds → their value while validating (nothing has run, no extra_data yet)
_HIDDEN_AT_VALIDATION: Dict[str, Any] = {
    "PROMPT": {},
    "DYNPROMPT": None,
    "EXTRA_PNGINFO": None,
    "AUTH_TOKEN_COMFY_ORG": None,
    "API_KEY_COMFY_ORG": None,
}


def _custom_validation(
    node_class: Any,
    class_inputs: Dict[str, Any],
    inputs: Dict[str, Any],
    unique_id: Any,
    validate_args: List[str],
    validate_kwargs: bool,
    received_types: Dict[str, Any],
) -> List[ErrorDict]:
    """Call the node's ``VALIDATE_INPUTS`` with the inputs it names (linked ones as None, as
    ComfyUI does before anything has run); one ``custom_validation_failed`` per passed
    argument when it returns anything but ``True``."""
    declared = {**class_inputs.get("required", {}), **class_inputs.get("optional", {})}
    available: Dict[str, Any] = {}
    for name, value in inputs.items():
        if _is_link(value):
            available[name] = None
        elif name in declared:
            available[name] = value
    for name, kind in class_inputs.get("hidden", {}).items():
        if kind == "UNIQUE_ID":
            available[name] = unique_id
        elif kind in _HIDDEN_AT_VALIDATION:
            available[name] = copy.deepcopy(_HIDDEN_AT_VALIDATION[kind])
    passed = {k: v for k, v in available.items() if k in validate_args or validate_kwargs}
    if "input_types" in validate_args:
        passed["input_types"] = received_types
    result = node_class.VALIDATE_INPUTS(**passed)
    if result is True:
        return []
    details_suffix = "" if result is False else f" - {result}"
    return [
        {
            "type": "custom_validation_failed",
            "message": "Custom validation failed for node",
            "details": f"{name}{details_suffix}",
            "extra_info": {"input_name": name},
        }
        for name in passed
    ]


def _plain(value: Any) -> Any:
    """Tuples (from INPUT_TYPES specs) to lists, so the result is what the JSON body holds."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
