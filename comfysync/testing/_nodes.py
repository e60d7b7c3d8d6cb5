"""The node registry of a FakeComfyUI server: ComfyUI's ``NODE_CLASS_MAPPINGS`` +
``NODE_DISPLAY_NAME_MAPPINGS``, one per server instead of one per process.

A node class has ComfyUI's (V1) shape::

    class Blur:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",),
                                 "radius": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 50.0})},
                    "hidden": {"node_id": "UNIQUE_ID"}}
        RETURN_TYPES = ("IMAGE",)        # optional: RETURN_NAMES, OUTPUT_IS_LIST, OUTPUT_TOOLTIPS
        FUNCTION = "blur"                # the method the executor calls with the inputs as kwargs
        CATEGORY = "image/filter"        # optional: OUTPUT_NODE, DESCRIPTION, IS_CHANGED,
                                         # VALIDATE_INPUTS, DEPRECATED, EXPERIMENTAL
        def blur(self, image, radius, node_id=None):
            return ([im.filter(ImageFilter.GaussianBlur(radius)) for im in image],)

and its ``/object_info`` entry is generated from those attributes exactly as ComfyUI's
``node_info`` does (``python_module`` from ``RELATIVE_PYTHON_MODULE``, else
``"custom_nodes.<module of the class>"``). The stock nodes' input specs come from the real
v0.3.64 definitions (``data/stock_nodes_v0.3.64.json``), so they serve those definitions, with
the file and model combos of this server filled in.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ._builtin_nodes import PROBE_NODES, STOCK_NODES
from ._builtin_nodes._common import FolderAware, NodeFolders, stock_definitions

logger = logging.getLogger("comfysync.testing.nodes")

#: The model folders of a stock v0.3.64 server (``GET /models``), in its order.
MODEL_FOLDERS: Tuple[str, ...] = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
)

#: Checkpoints a fresh FakeComfyUI pretends to have: those named by ComfyUI's default
#: workflow (current and older frontends), so it validates unchanged.
DEFAULT_CHECKPOINTS: Tuple[str, ...] = (
    "v1-5-pruned-emaonly-fp16.safetensors",
    "v1-5-pruned-emaonly.safetensors",
)


def default_models(overrides: Optional[Mapping[str, Sequence[str]]] = None) -> Dict[str, List[str]]:
    """Every stock model folder (empty but ``checkpoints``), then ``overrides`` folder by
    folder (a folder not in the stock list is added)."""
    models: Dict[str, List[str]] = {name: [] for name in MODEL_FOLDERS}
    models["checkpoints"] = list(DEFAULT_CHECKPOINTS)
    for folder, names in (overrides or {}).items():
        if isinstance(names, str):
            raise TypeError(f"models[{folder!r}] must be a list of file names, not a string")
        models[folder] = list(names)
    return models


def node_info(class_type: str, cls: type, display_name: Optional[str] = None) -> Dict[str, Any]:
    """The ``/object_info`` entry of a V1 node class, built as ComfyUI v0.3.64 builds it,
    as plain JSON types (tuples become lists)."""
    node: Any = cls  # a duck-typed ComfyUI node class
    inputs = node.INPUT_TYPES()
    returns = list(node.RETURN_TYPES)
    info: Dict[str, Any] = {
        "input": inputs,
        "input_order": {key: list(value.keys()) for key, value in inputs.items()},
        "output": returns,
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(returns))),
        "output_name": list(getattr(cls, "RETURN_NAMES", returns)),
        "name": class_type,
        "display_name": display_name if display_name is not None else class_type,
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": python_module_of(cls),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = list(node.OUTPUT_TOOLTIPS)
    if getattr(cls, "DEPRECATED", False):
        info["deprecated"] = True
    if getattr(cls, "EXPERIMENTAL", False):
        info["experimental"] = True
    if hasattr(cls, "API_NODE"):
        info["api_node"] = node.API_NODE
    normalized: Dict[str, Any] = json.loads(json.dumps(info))
    return normalized


def python_module_of(cls: type) -> str:
    """``RELATIVE_PYTHON_MODULE`` (set by ComfyUI's loader on custom nodes; ours set it on the
    built-ins), else ``custom_nodes.<module>`` for a class registered by a user."""
    declared = getattr(cls, "RELATIVE_PYTHON_MODULE", None)
    if isinstance(declared, str) and declared:
        return declared
    return f"custom_nodes.{cls.__module__}"


def _check_node_class(class_type: str, cls: Any) -> None:
    if not isinstance(class_type, str) or not class_type:
        raise ValueError("class_type must be a non-empty string")
    if not isinstance(cls, type):
        raise TypeError(f"{class_type}: expected a node class, got {type(cls).__name__}")
    if not callable(getattr(cls, "INPUT_TYPES", None)):
        raise TypeError(f"{class_type}: a node class needs an INPUT_TYPES() classmethod")
    if not isinstance(getattr(cls, "RETURN_TYPES", None), (tuple, list)):
        raise TypeError(f"{class_type}: RETURN_TYPES must be a tuple of type names")
    function = getattr(cls, "FUNCTION", None)
    if not isinstance(function, str) or not callable(getattr(cls, function, None)):
        raise TypeError(f"{class_type}: FUNCTION must name a method of the class")


class NodeRegistry:
    """class_type → node class (+ display name) for one server. Thread-safe: the server
    thread reads it while a test registers nodes."""

    def __init__(self, models: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        #: model folder → file names; answers ``/models`` and fills model combos. Mutable:
        #: combos are rebuilt from it on every ``INPUT_TYPES()`` call.
        self.models: Dict[str, List[str]] = default_models(models)
        self._lock = threading.Lock()
        self._classes: Dict[str, Tuple[type, Optional[str]]] = {}

    def register(self, class_type: str, cls: type, display_name: Optional[str] = None) -> None:
        """Add (or replace) a node class under ``class_type``."""
        _check_node_class(class_type, cls)
        with self._lock:
            self._classes[class_type] = (cls, display_name)
        logger.debug("registered node %s (%s)", class_type, cls.__qualname__)

    def get(self, class_type: str) -> Optional[type]:
        with self._lock:
            entry = self._classes.get(class_type)
        return entry[0] if entry is not None else None

    def __contains__(self, class_type: object) -> bool:
        with self._lock:
            return class_type in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self.class_types())

    def __len__(self) -> int:
        with self._lock:
            return len(self._classes)

    def class_types(self) -> List[str]:
        """Registered class types, in registration order."""
        with self._lock:
            return list(self._classes)

    def display_name(self, class_type: str) -> Optional[str]:
        with self._lock:
            entry = self._classes.get(class_type)
        if entry is None:
            return None
        return entry[1] if entry[1] is not None else class_type

    def object_info(self, class_type: Optional[str] = None) -> Dict[str, Any]:
        """``GET /object_info`` (all nodes) or ``GET /object_info/{class_type}`` (``{}`` when
        unknown). A node whose definition raises is logged and left out, as ComfyUI does."""
        with self._lock:
            if class_type is None:
                entries = list(self._classes.items())
            elif class_type in self._classes:
                entries = [(class_type, self._classes[class_type])]
            else:
                entries = []
        out: Dict[str, Any] = {}
        for name, (cls, display_name) in entries:
            try:
                out[name] = node_info(name, cls, display_name)
            except Exception:
                logger.exception(
                    "[ERROR] An error occurred while retrieving information for the '%s' node.",
                    name,
                )
        return out


def bind_folders(cls: type, folders: NodeFolders) -> type:
    """A subclass of a :class:`FolderAware` node class that sees ``folders`` (other classes
    are returned unchanged)."""
    if not issubclass(cls, FolderAware):
        return cls
    namespace = {
        "FOLDERS": folders,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    return type(cls.__name__, (cls,), namespace)


def default_registry(
    models: Optional[Mapping[str, Sequence[str]]] = None,
    input_dir: Optional[Path] = None,
    *,
    output_dir: Optional[Path] = None,
    temp_dir: Optional[Path] = None,
) -> NodeRegistry:
    """A fresh registry with every built-in node: the stock ones (real v0.3.64 definitions;
    model combos from ``models``, see :func:`default_models`; LoadImage's ``image`` combo
    lists ``input_dir`` at call time) and the probe nodes of the recordings. ``output_dir``
    and ``temp_dir`` let validation check ``"x.png [output]"``-style LoadImage inputs."""
    registry = NodeRegistry(models)
    folders = NodeFolders(
        models=registry.models,
        input_dir=Path(input_dir) if input_dir is not None else None,
        output_dir=Path(output_dir) if output_dir is not None else None,
        temp_dir=Path(temp_dir) if temp_dir is not None else None,
    )
    definitions = stock_definitions()
    for class_type, cls in STOCK_NODES.items():
        display = definitions[class_type]["display_name"]
        registry.register(class_type, bind_folders(cls, folders), display)
    for class_type, cls in PROBE_NODES.items():
        registry.register(class_type, bind_folders(cls, folders))
    return registry
