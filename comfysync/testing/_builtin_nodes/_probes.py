"""The probe nodes used to record the real server (``custom_nodes/probe_nodes`` there).

Same names, inputs (types, defaults, ranges) and behaviour as in the recordings, so a
recorded prompt replays unchanged on FakeComfyUI. Their ``/object_info`` is generated from the
classes, like any custom node's. The ``seed`` inputs do nothing but change the cache key.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Optional, Tuple

from PIL import Image

from .._context import PreviewTuple, ProgressBar, current_context
from ._common import ImageBatch, InputTypes, batch_shape

_SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF})
#: previews of ProbeProgress are fitted into this square, as the recording pack did
PROBE_PREVIEW_SIZE = 512


class _Probe:
    RELATIVE_PYTHON_MODULE = "custom_nodes.probe_nodes"
    CATEGORY = "probe"


class ProbeProgress(_Probe):
    """``steps`` progress-bar updates, ``delay_ms`` apart, each with a JPEG or PNG preview of
    the first input image when ``preview`` is not ``"none"``; passes the image through. Every
    update is an interruption point, and so is the wait between updates."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "image": ("IMAGE",),
                "steps": ("INT", {"default": 5, "min": 1, "max": 100000}),
                "delay_ms": ("INT", {"default": 10, "min": 0, "max": 600000}),
                "preview": (["none", "JPEG", "PNG"], {"default": "none"}),
                "seed": _SEED,
            }
        }

    def run(
        self, image: ImageBatch, steps: int, delay_ms: int, preview: str, seed: int
    ) -> Tuple[ImageBatch]:
        ctx = current_context()
        bar = ProgressBar(steps)
        for step in range(steps):
            ctx.sleep(delay_ms / 1000.0)
            shown: Optional[PreviewTuple] = None
            if preview != "none" and image:
                shown = (preview, image[0], PROBE_PREVIEW_SIZE)
            bar.update_absolute(step + 1, steps, shown)
        return (image,)


class ProbeSleep(_Probe):
    """Sleeps ``seconds``, waking at once on interrupt; passes the image through."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "image": ("IMAGE",),
                "seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3600.0, "step": 0.01}),
                "seed": _SEED,
            }
        }

    def run(self, image: ImageBatch, seconds: float, seed: int) -> Tuple[ImageBatch]:
        current_context().sleep(seconds)
        return (image,)


class ProbeFail(_Probe):
    """Raises ``RuntimeError(message)``: the recorded ``execution_error``."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "image": ("IMAGE",),
                "message": ("STRING", {"default": "probe failure"}),
            }
        }

    def run(self, image: ImageBatch, message: str) -> Tuple[ImageBatch]:
        raise RuntimeError(message)


class ProbeText(_Probe):
    """Output node with UI ``{"text": [text]}``, plus the image's tensor shape as ComfyUI
    would print it (``"(1, 64, 64, 3)"``) when an image is connected."""

    RETURN_TYPES: Tuple[str, ...] = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {"text": ("STRING", {"default": "hello", "multiline": True})},
            "optional": {"image": ("IMAGE",)},
        }

    def run(self, text: str, image: Optional[ImageBatch] = None) -> Dict[str, Any]:
        lines = [text]
        if image is not None:
            lines.append(str(batch_shape(image)))
        return {"ui": {"text": lines}, "result": ()}


class ProbeNoise(_Probe):
    """A batch of uniformly random RGB images (incompressible: big PNGs), seeded."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 1, "max": 16384}),
                "height": ("INT", {"default": 512, "min": 1, "max": 16384}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64}),
                "seed": _SEED,
            }
        }

    def run(self, width: int, height: int, batch_size: int, seed: int) -> Tuple[ImageBatch]:
        rng = random.Random(seed)
        return (
            [
                Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
                for _ in range(batch_size)
            ],
        )
