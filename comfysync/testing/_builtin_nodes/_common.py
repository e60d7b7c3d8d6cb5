"""What the built-in nodes share: the real v0.3.64 definitions, the server's folders, and
ComfyUI's annotated file names.

ComfyUI's ``INPUT_TYPES()`` is a classmethod that reads process-wide globals (the model
folders, the input directory) to fill its combo lists. FakeComfyUI keeps no globals: the
registry gives each node class that needs them a subclass whose :attr:`FOLDERS` class attribute
points at that server's :class:`NodeFolders` (see ``_nodes.default_registry``).

The input specs of the stock nodes are not retyped here: they come from
``comfysync/testing/data/stock_nodes_v0.3.64.json``, extracted from a real v0.3.64 server's
``/object_info``, so validation errors quote exactly the ``input_config`` the real server
quotes.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from attrs import define

from .._context import current_context

if TYPE_CHECKING:
    from PIL.Image import Image

#: A node's ``INPUT_TYPES()`` answer: ``{"required": {...}, "optional": {...}, "hidden": {...}}``.
InputTypes = Dict[str, Dict[str, Any]]
#: ComfyUI's IMAGE type here: a batch of RGB Pillow images (a tensor B×H×W×3 in ComfyUI).
ImageBatch = List["Image"]
#: ComfyUI's MASK type here: a batch of mode ``"L"`` Pillow images.
MaskBatch = List["Image"]

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "stock_nodes_v0.3.64.json"

_definitions: Optional[Dict[str, Dict[str, Any]]] = None


def stock_definitions() -> Dict[str, Dict[str, Any]]:
    """The real ``/object_info`` entries of the stock nodes we implement (read once)."""
    global _definitions
    if _definitions is None:
        with DATA_FILE.open("r", encoding="utf-8") as f:
            _definitions = json.load(f)
    return _definitions


def stock_inputs(class_type: str, **combos: List[str]) -> InputTypes:
    """A fresh copy of the real ``input`` of ``class_type``, with the option lists of the
    combo inputs named in ``combos`` replaced (file and model lists are per server)."""
    inputs: InputTypes = copy.deepcopy(stock_definitions()[class_type]["input"])
    for name, options in combos.items():
        for category in ("required", "optional"):
            spec = inputs.get(category, {}).get(name)
            if spec is not None:
                inputs[category][name] = [list(options)] + list(spec[1:])
    return inputs


@define(frozen=True)
class NodeFolders:
    """The per-server state a node class may need outside of a running prompt (while building
    ``INPUT_TYPES`` or validating): folders, and the model lists by folder name. ``None``
    folders are unknown (a registry built without them)."""

    models: Mapping[str, List[str]]
    input_dir: Optional[Path] = None
    output_dir: Optional[Path] = None
    temp_dir: Optional[Path] = None


class FolderAware:
    """Mixin for node classes whose definition depends on the server's folders."""

    FOLDERS: ClassVar[Optional[NodeFolders]] = None

    @classmethod
    def model_list(cls, folder: str) -> List[str]:
        if cls.FOLDERS is None:
            return []
        return list(cls.FOLDERS.models.get(folder, []))

    @classmethod
    def folder(cls, kind: str) -> Optional[Path]:
        """``kind`` in input/output/temp: the bound folder, else the running node's folder."""
        if cls.FOLDERS is not None:
            bound: Optional[Path] = getattr(cls.FOLDERS, f"{kind}_dir")
            if bound is not None:
                return bound
        try:
            ctx = current_context()
        except RuntimeError:
            return None
        found: Path = getattr(ctx, f"{kind}_dir")
        return found


_ANNOTATIONS = (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp"))


def split_annotation(name: str) -> Tuple[str, Optional[str]]:
    """``"x.png [output]"`` → ``("x.png", "output")``; unannotated → ``(name, None)``.
    Like ComfyUI, the annotation's leading space is cut together with it."""
    for suffix, kind in _ANNOTATIONS:
        if name.endswith(suffix):
            return name[: -(len(suffix) + 1)], kind
    return name, None


def confined(base: Path, relative: str) -> Optional[Path]:
    """``base / relative`` if it stays inside ``base``, else None. ComfyUI itself does not
    check this for node inputs; a fake server reachable from tests should not read outside
    its folders either."""
    root = base.resolve()
    target = (root / relative).resolve()
    if target == root or root not in target.parents:
        return None
    return target


def annotated_path(node_class: type, name: str) -> Optional[Path]:
    """Resolve a file name as LoadImage does (annotation selects the folder, default input).
    None when the folder is unknown or the name escapes it."""
    relative, kind = split_annotation(name)
    folder = folder_for(node_class, kind or "input")
    if folder is None:
        return None
    return confined(folder, relative)


def folder_for(node_class: type, kind: str) -> Optional[Path]:
    """The folder ``kind`` as ``node_class`` sees it: bound folders first, else the running
    node's context; None when neither is known."""
    if isinstance(node_class, type) and issubclass(node_class, FolderAware):
        return node_class.folder(kind)
    try:
        found: Path = getattr(current_context(), f"{kind}_dir")
    except RuntimeError:
        return None
    return found


def list_input_files(
    input_dir: Optional[Path], content_types: Optional[Tuple[str, ...]]
) -> List[str]:
    """Sorted names of the regular files directly in ``input_dir`` (what the real LoadImage
    offers), keeping only the given mime content types (``("image",)``) unless None."""
    if input_dir is None or not input_dir.is_dir():
        return []
    names = [e.name for e in os.scandir(input_dir) if e.is_file()]
    if content_types is not None:
        names = [n for n in names if _content_type(n) in content_types]
    return sorted(names)


def _content_type(filename: str) -> Optional[str]:
    if filename.lower().endswith(".webp"):  # ComfyUI registers it; older mimetypes lack it
        return "image"
    mime, _ = mimetypes.guess_type(filename, strict=False)
    return mime.split("/")[0] if mime else None


def batch_shape(images: ImageBatch) -> Tuple[int, int, int, int]:
    """The tensor shape ComfyUI would report for this batch: (B, H, W, C)."""
    if not images:
        return (0, 0, 0, 3)
    width, height = images[0].size
    return (len(images), height, width, 3)
