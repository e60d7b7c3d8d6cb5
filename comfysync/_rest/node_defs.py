"""Node definitions from ``GET /object_info``: what node classes the server has and what
inputs and outputs each one takes.

The server's catalogue of nodes, as opposed to the answers about prompts in
:mod:`comfysync._rest.models`: the workflow layer checks and converts workflows against it, and
the checkpoint, LoRA and sampler lists are read from its combo inputs. Input specs come in two
wire forms (classic ``[[...options]]`` and V3 ``["COMBO", {"options": [...]}]``); both read as
one :class:`InputSpec`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from attrs import define, field

from .shapes import wire_array, wire_object

__all__ = ["InputSpec", "NodeDef", "SamplerInfo"]


@define(frozen=True)
class InputSpec:
    """One input of a node definition.

    ``type`` is the input type (``"INT"``, ``"IMAGE"``, …; ``"COMBO"`` for option lists in
    either the classic ``[[...options]]`` or the newer ``["COMBO", {"options": [...]}]``
    form), ``options`` the spec's option dict (``default``, ``min``, ``max``, …),
    ``category`` ``"required"``, ``"optional"`` or ``"hidden"``.
    """

    name: str
    type: str
    category: str
    options: Dict[str, Any] = field(factory=dict)
    choices: Optional[List[Any]] = None
    raw: Any = field(default=None, repr=False, eq=False)

    @classmethod
    def from_wire(cls, name: str, spec: Any, category: str) -> InputSpec:
        """From the wire ``spec`` of input ``name`` in the input group ``category``: a bare
        type name, ``[type, options]``, ``[[choices], options]`` or
        ``["COMBO", {"options": [choices], ...}]``. Anything else (a custom node's own
        shape) reads as an input of any type (``"*"``): one odd input must not make the
        whole ``/object_info`` answer unreadable."""
        choices: Optional[List[Any]] = None
        options: Dict[str, Any] = {}
        if isinstance(spec, str):
            return cls(name=name, type=spec, category=category, raw=spec)
        if not isinstance(spec, (list, tuple)):
            return cls(name=name, type="*", category=category, raw=spec)
        items = list(spec)
        head: Any = items[0] if items else "*"
        if len(items) > 1 and isinstance(items[1], Mapping):
            options = dict(items[1])
        if isinstance(head, list):
            kind = "COMBO"
            choices = list(head)
        else:
            kind = str(head)
            if kind == "COMBO" and isinstance(options.get("options"), list):
                choices = list(options["options"])
        return cls(name=name, type=kind, category=category, options=options, choices=choices,
                   raw=spec)

    @property
    def default(self) -> Any:
        """The spec's ``default`` value, ``None`` when it has none."""
        return self.options.get("default")

    @property
    def is_combo(self) -> bool:
        """True for an input whose value is one of ``choices``."""
        return self.choices is not None


_INPUT_CATEGORIES = ("required", "optional", "hidden")


@define(frozen=True)
class NodeDef:
    """A node class from ``GET /object_info``.

    ``input_required`` / ``input_optional`` / ``input_hidden`` are the server's input dicts
    verbatim; :meth:`inputs` gives them as :class:`InputSpec` in the server's ``input_order``,
    parsed once when the definition is made (UI conversion and validation ask for them per
    node of every workflow).
    """

    name: str
    display_name: str
    category: str = ""
    description: str = ""
    input_required: Dict[str, Any] = field(factory=dict, repr=False)
    input_optional: Dict[str, Any] = field(factory=dict, repr=False)
    input_hidden: Dict[str, Any] = field(factory=dict, repr=False)
    input_order: Dict[str, List[str]] = field(factory=dict, repr=False)
    output: List[str] = field(factory=list)
    output_is_list: List[bool] = field(factory=list, repr=False)
    output_name: List[str] = field(factory=list, repr=False)
    output_node: bool = False
    python_module: str = ""
    deprecated: bool = False
    experimental: bool = False
    raw: Dict[str, Any] = field(factory=dict, repr=False, eq=False)
    _specs: Dict[str, InputSpec] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        specs: Dict[str, InputSpec] = {}
        for category in _INPUT_CATEGORIES:
            group = self._category_dict(category)
            names = [n for n in self.input_order.get(category, []) if n in group]
            names += [n for n in group if n not in names]
            for n in names:
                specs.setdefault(n, InputSpec.from_wire(n, group[n], category))
        object.__setattr__(self, "_specs", specs)

    @classmethod
    def from_wire(cls, name: str, data: Mapping[str, Any]) -> NodeDef:
        """From ``data``, the value under class ``name`` in a ``GET /object_info`` answer;
        missing fields take the server's defaults (``display_name`` falls back to the name,
        ``output_name`` to the output types)."""
        data = wire_object(data, f"node definition {name}")
        inputs = wire_object(data.get("input"), f"inputs of {name}")
        order = {
            str(k): [str(x) for x in wire_array(v, "input_order")]
            for k, v in wire_object(data.get("input_order"), f"input_order of {name}").items()
        }
        # an output that is an option list (a combo passed on) has the type COMBO
        output = [
            "COMBO" if isinstance(x, list) else str(x)
            for x in wire_array(data.get("output"), "output")
        ]
        return cls(
            name=str(data.get("name") or name),
            display_name=str(data.get("display_name") or data.get("name") or name),
            category=str(data.get("category") or ""),
            description=str(data.get("description") or ""),
            input_required=wire_object(inputs.get("required"), "required inputs"),
            input_optional=wire_object(inputs.get("optional"), "optional inputs"),
            input_hidden=wire_object(inputs.get("hidden"), "hidden inputs"),
            input_order=order,
            output=output,
            output_is_list=[bool(x) for x in wire_array(data.get("output_is_list"), "is_list")]
            or [False] * len(output),
            output_name=[str(x) for x in wire_array(data.get("output_name"), "output_name")]
            or list(output),
            output_node=bool(data.get("output_node", False)),
            python_module=str(data.get("python_module") or ""),
            deprecated=bool(data.get("deprecated", False)),
            experimental=bool(data.get("experimental", False)),
            raw=data,
        )

    def _category_dict(self, category: str) -> Dict[str, Any]:
        return {
            "required": self.input_required,
            "optional": self.input_optional,
            "hidden": self.input_hidden,
        }[category]

    def inputs(self, *, include_hidden: bool = False) -> List[InputSpec]:
        """Required then optional inputs (then hidden ones with ``include_hidden``), each
        group in the server's ``input_order``."""
        return [
            spec for spec in self._specs.values()
            if include_hidden or spec.category != "hidden"
        ]

    def input(self, name: str) -> Optional[InputSpec]:
        """The spec of input ``name`` (any category), or ``None``."""
        return self._specs.get(name)

    def input_names(self, *, include_hidden: bool = False) -> List[str]:
        """The names of :meth:`inputs` (hidden ones only with ``include_hidden``)."""
        return [spec.name for spec in self.inputs(include_hidden=include_hidden)]

    def combo_options(self, input_name: str) -> Optional[List[Any]]:
        """The allowed values of the combo input ``input_name`` (e.g. checkpoint names);
        ``None`` when the node has no such input or it is not a combo."""
        spec = self.input(input_name)
        return spec.choices if spec is not None else None


@define(frozen=True)
class SamplerInfo:
    """Sampler and scheduler names the server offers (from ``KSampler``'s inputs)."""

    samplers: List[str] = field(factory=list)
    schedulers: List[str] = field(factory=list)

    @classmethod
    def from_node_def(cls, node: NodeDef) -> SamplerInfo:
        """From the ``sampler_name`` and ``scheduler`` combos of ``node`` (``KSampler``)."""
        return cls(
            samplers=[str(x) for x in node.combo_options("sampler_name") or []],
            schedulers=[str(x) for x in node.combo_options("scheduler") or []],
        )
