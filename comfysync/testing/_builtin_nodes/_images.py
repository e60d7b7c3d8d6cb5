"""Stock image nodes: EmptyImage, LoadImage, LoadImageMask, ImageInvert, ImageScale.

Same inputs, outputs and behaviour as ComfyUI v0.3.64's ``nodes.py``, on Pillow images
instead of tensors (IMAGE = list of RGB images, MASK = list of ``"L"`` images).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

from PIL import Image, ImageOps, ImageSequence

from ._common import (
    FolderAware,
    ImageBatch,
    InputTypes,
    MaskBatch,
    annotated_path,
    confined,
    folder_for,
    list_input_files,
    split_annotation,
    stock_inputs,
)


class EmptyImage:
    """A batch of single-colour images; ``color`` is 0xRRGGBB."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("EmptyImage")

    def generate(
        self, width: int, height: int, batch_size: int = 1, color: int = 0
    ) -> Tuple[ImageBatch]:
        rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
        return ([Image.new("RGB", (width, height), rgb) for _ in range(batch_size)],)


def _open_input(node_class: type, name: str) -> Path:
    path = annotated_path(node_class, name)
    if path is None or not path.is_file():
        raise FileNotFoundError(f"[Errno 2] No such file or directory: '{name}'")
    return path


def _file_digest(node_class: type, name: str) -> str:
    path = annotated_path(node_class, name)
    if path is None or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _validate_file(node_class: type, name: str) -> Union[bool, str]:
    """ComfyUI's check that the (annotated) file exists. A folder this registry was not told
    about (e.g. ``[temp]`` without ``temp_dir``) defers the check to run time."""
    relative, kind = split_annotation(name)
    folder = folder_for(node_class, kind or "input")
    if folder is None:
        return True
    path = confined(folder, relative)
    if path is None or not path.exists():
        return f"Invalid image file: {name}"
    return True


def _to_mask(frame: Image.Image) -> Image.Image:
    """ComfyUI's mask of a loaded frame: 1 - alpha (as 255 - alpha); no alpha → 64×64 zeros."""
    if "A" in frame.getbands():
        return ImageOps.invert(frame.getchannel("A"))
    if frame.mode == "P" and "transparency" in frame.info:
        return ImageOps.invert(frame.convert("RGBA").getchannel("A"))
    return Image.new("L", (64, 64), 0)


def _from_int_mode(frame: Image.Image) -> Image.Image:
    if frame.mode == "I":  # 16-bit PNGs: ComfyUI scales them down by 255
        return frame.point(lambda v: v * (1 / 255))
    return frame


class LoadImage(FolderAware):
    """Loads an image of the input folder (every frame of the same size as the first) and
    its mask. The ``image`` combo lists the image files of the server's input folder."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("LoadImage", image=list_input_files(cls.folder("input"), ("image",)))

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:
        return _file_digest(cls, image)

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> Union[bool, str]:
        return _validate_file(cls, image)

    def load_image(self, image: str) -> Tuple[ImageBatch, MaskBatch]:
        with Image.open(_open_input(type(self), image)) as img:
            images: ImageBatch = []
            masks: MaskBatch = []
            size = None
            frames: List[Image.Image] = list(ImageSequence.Iterator(img))
            if img.format == "MPO":  # multi-picture JPEGs: ComfyUI keeps the first picture
                frames = frames[:1]
            for raw in frames:
                frame = _from_int_mode(ImageOps.exif_transpose(raw) or raw)
                rgb = frame.convert("RGB")
                if size is None:
                    size = rgb.size
                if rgb.size != size:
                    continue
                images.append(rgb)
                masks.append(_to_mask(frame))
        return (images, masks)


class LoadImageMask(FolderAware):
    """Loads one channel of an input image as a mask (alpha inverted, as ComfyUI does)."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"
    CATEGORY = "mask"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("LoadImageMask", image=list_input_files(cls.folder("input"), None))

    @classmethod
    def IS_CHANGED(cls, image: str, channel: str) -> str:
        return _file_digest(cls, image)

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> Union[bool, str]:
        return _validate_file(cls, image)

    def load_image(self, image: str, channel: str) -> Tuple[MaskBatch]:
        with Image.open(_open_input(type(self), image)) as img:
            frame = ImageOps.exif_transpose(img) or img
            if frame.getbands() != ("R", "G", "B", "A"):
                frame = _from_int_mode(frame).convert("RGBA")
            band = channel[0].upper()
            if band not in frame.getbands():
                return ([Image.new("L", (64, 64), 0)],)
            mask = frame.getchannel(band)
            return ([ImageOps.invert(mask) if band == "A" else mask],)


class ImageInvert:
    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("ImageInvert")

    def invert(self, image: ImageBatch) -> Tuple[ImageBatch]:
        return ([ImageOps.invert(img.convert("RGB")) for img in image],)


_FILTERS: Any = getattr(Image, "Resampling", Image)  # Pillow < 9.1 has no Image.Resampling
_RESAMPLE: Dict[str, Any] = {
    "nearest-exact": _FILTERS.NEAREST,
    "bilinear": _FILTERS.BILINEAR,
    "area": _FILTERS.BOX,
    "bicubic": _FILTERS.BICUBIC,
    "lanczos": _FILTERS.LANCZOS,
}


def _center_crop(img: Image.Image, width: int, height: int) -> Image.Image:
    """ComfyUI's ``common_upscale`` crop: cut the longer side to the target aspect ratio."""
    old_w, old_h = img.size
    old_aspect = old_w / old_h
    new_aspect = width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return img.crop((x, y, old_w - x, old_h - y))


class ImageScale:
    """Resizes every image of the batch; a 0 width or height keeps the aspect ratio."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("ImageScale")

    def upscale(
        self, image: ImageBatch, upscale_method: str, width: int, height: int, crop: str
    ) -> Tuple[ImageBatch]:
        if width == 0 and height == 0:
            return (list(image),)
        out: ImageBatch = []
        for img in image:
            w, h = width, height
            if w == 0:
                w = max(1, round(img.width * h / img.height))
            elif h == 0:
                h = max(1, round(img.height * w / img.width))
            src = _center_crop(img, w, h) if crop == "center" else img
            out.append(src.resize((w, h), _RESAMPLE[upscale_method]))
        return (out,)
