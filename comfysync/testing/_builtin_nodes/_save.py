"""Stock output nodes: SaveImage, PreviewImage, SaveAnimatedWEBP, SaveImageWebsocket.

File naming follows ComfyUI's ``folder_paths.get_save_image_path``: the prefix may contain a
subfolder (``"sdk/big"``) and ``%width%``/``%height%``/``%year%``… variables; files are named
``<prefix>_<counter:05>_.<ext>`` where the counter continues after the highest one already in
that folder for that prefix. The ``ui`` answers have the real shape, so ``executed`` messages
and history entries look like the real server's.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .._context import ProgressBar, current_context
from ._common import ImageBatch, InputTypes, stock_inputs

#: ``{"ui": {...}}``: what an output node returns.
UiResult = Dict[str, Any]


def _compute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    for name, value in (
        ("%width%", str(width)),
        ("%height%", str(height)),
        ("%year%", str(now.tm_year)),
        ("%month%", str(now.tm_mon).zfill(2)),
        ("%day%", str(now.tm_mday).zfill(2)),
        ("%hour%", str(now.tm_hour).zfill(2)),
        ("%minute%", str(now.tm_min).zfill(2)),
        ("%second%", str(now.tm_sec).zfill(2)),
    ):
        prefix = prefix.replace(name, value)
    return prefix


def _counter_of(entry: str, filename: str) -> int:
    """The counter of ``entry`` if it is ``<filename>_<digits>…``, else -1."""
    head = entry[: len(filename) + 1]
    if os.path.normcase(head[:-1]) != os.path.normcase(filename) or not head.endswith("_"):
        return -1
    try:
        return int(entry[len(filename) + 1 :].split("_")[0])
    except ValueError:
        return 0


def save_image_path(
    filename_prefix: str, output_dir: Path, width: int = 0, height: int = 0
) -> Tuple[Path, str, int, str]:
    """``(folder, filename, counter, subfolder)`` for the next files of ``filename_prefix``.

    Raises like ComfyUI when the prefix points outside ``output_dir``; creates the folder."""
    if "%" in filename_prefix:
        filename_prefix = _compute_vars(filename_prefix, width, height)
    normalized = os.path.normpath(filename_prefix)
    subfolder = os.path.dirname(normalized)
    filename = os.path.basename(normalized)
    root = Path(os.path.abspath(output_dir))
    folder = Path(os.path.abspath(os.path.join(root, subfolder)))
    if os.path.commonpath((str(root), str(folder))) != str(root):
        raise Exception(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {folder}\n         output_dir: {root}"
        )
    if folder.is_dir():
        counters = [_counter_of(entry, filename) for entry in os.listdir(folder)]
        counter = max([c for c in counters if c >= 0], default=0) + 1
    else:
        folder.mkdir(parents=True, exist_ok=True)
        counter = 1
    return folder, filename, counter, subfolder.replace(os.sep, "/")


def _png_metadata(prompt: Any, extra_pnginfo: Any) -> PngInfo:
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if isinstance(extra_pnginfo, dict):
        for key, value in extra_pnginfo.items():
            info.add_text(key, json.dumps(value))
    return info


class SaveImage:
    """Saves the batch as PNGs (with the prompt and workflow as text chunks) in the output
    folder; answers ``{"images": [{"filename", "subfolder", "type": "output"}, ...]}``."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES: Tuple[str, ...] = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."

    def __init__(self) -> None:
        self.type = "output"
        self.prefix_append = ""
        self.compress_level = 4

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("SaveImage")

    def _folder(self) -> Path:
        return current_context().output_dir

    def save_images(
        self,
        images: ImageBatch,
        filename_prefix: str = "ComfyUI",
        prompt: Any = None,
        extra_pnginfo: Any = None,
    ) -> UiResult:
        filename_prefix += self.prefix_append
        width, height = images[0].size if images else (0, 0)
        folder, filename, counter, subfolder = save_image_path(
            filename_prefix, self._folder(), width, height
        )
        results: List[Dict[str, str]] = []
        for batch_number, image in enumerate(images):
            name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            image.save(
                folder / name,
                pnginfo=_png_metadata(prompt, extra_pnginfo),
                compress_level=self.compress_level,
            )
            results.append({"filename": name, "subfolder": subfolder, "type": self.type})
            counter += 1
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    """SaveImage into the temp folder under ``ComfyUI_temp_<5 random letters>_``
    (``type: "temp"``), with fast PNG compression, as ComfyUI does."""

    def __init__(self) -> None:
        super().__init__()
        self.type = "temp"
        letters = "abcdefghijklmnopqrstupvxyz"  # sic: ComfyUI's alphabet
        self.prefix_append = "_temp_" + "".join(random.choice(letters) for _ in range(5))
        self.compress_level = 1

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("PreviewImage")

    def _folder(self) -> Path:
        return current_context().temp_dir


_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


class SaveAnimatedWEBP:
    """Saves the batch as one animated WebP; answers ``{"images": [...], "animated": [bool]}``
    (``animated`` is true unless the batch has a single frame)."""

    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_images"
    RETURN_TYPES: Tuple[str, ...] = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image/animation"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("SaveAnimatedWEBP")

    def save_images(
        self,
        images: ImageBatch,
        fps: float,
        filename_prefix: str,
        lossless: bool,
        quality: int,
        method: str,
        num_frames: int = 0,
        prompt: Any = None,
        extra_pnginfo: Any = None,
    ) -> UiResult:
        folder, filename, counter, subfolder = save_image_path(
            filename_prefix, current_context().output_dir, *images[0].size
        )
        exif = images[0].getexif()
        if prompt is not None:
            exif[0x0110] = f"prompt:{json.dumps(prompt)}"
        if isinstance(extra_pnginfo, dict):
            tag = 0x010F
            for key, value in extra_pnginfo.items():
                exif[tag] = f"{key}:{json.dumps(value)}"
                tag -= 1
        per_file = num_frames or len(images)
        results: List[Dict[str, str]] = []
        for start in range(0, len(images), per_file):
            name = f"{filename}_{counter:05}_.webp"
            images[start].save(
                folder / name,
                save_all=True,
                duration=int(1000.0 / fps),
                append_images=images[start + 1 : start + per_file],
                exif=exif,
                lossless=lossless,
                quality=quality,
                method=_WEBP_METHODS.get(method, 4),
            )
            results.append({"filename": name, "subfolder": subfolder, "type": "output"})
            counter += 1
        return {"ui": {"images": results, "animated": [per_file != 1]}}


class SaveImageWebsocket:
    """ComfyUI's bundled ``websocket_image_save`` node: streams each image, full size, as a
    PNG preview of a progress bar (a type-1 frame with format 2, or type 4 for clients that
    negotiated preview metadata); saves nothing, returns no UI."""

    RELATIVE_PYTHON_MODULE = "custom_nodes.websocket_image_save"
    RETURN_TYPES: Tuple[str, ...] = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "api/image"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("SaveImageWebsocket")

    def save_images(self, images: ImageBatch) -> Tuple[()]:
        bar = ProgressBar(len(images))
        for step, image in enumerate(images):
            preview: Optional[Tuple[str, Image.Image, Optional[int]]] = ("PNG", image, None)
            bar.update_absolute(step, len(images), preview)
        return ()

    @classmethod
    def IS_CHANGED(cls, images: Any) -> float:
        return time.time()
