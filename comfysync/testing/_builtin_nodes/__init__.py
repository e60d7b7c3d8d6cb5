"""The node classes FakeComfyUI ships with (see ``comfysync.testing._nodes`` for the registry).

Stock ComfyUI nodes with their real v0.3.64 inputs and outputs, the probe nodes the
recordings were made with, and a model-free text-to-image chain.
"""

from __future__ import annotations

from typing import Dict

from ._images import EmptyImage, ImageInvert, ImageScale, LoadImage, LoadImageMask
from ._probes import ProbeFail, ProbeNoise, ProbeProgress, ProbeSleep, ProbeText
from ._save import PreviewImage, SaveAnimatedWEBP, SaveImage, SaveImageWebsocket
from ._txt2img import (
    CheckpointLoaderSimple,
    CLIPTextEncode,
    EmptyLatentImage,
    FakeClip,
    FakeConditioning,
    FakeLatent,
    FakeModel,
    FakeVae,
    KSampler,
    LoraLoader,
    VAEDecode,
)

#: class_type → class of every stock node we implement (their definitions are in the data file)
STOCK_NODES: Dict[str, type] = {
    "EmptyImage": EmptyImage,
    "LoadImage": LoadImage,
    "LoadImageMask": LoadImageMask,
    "ImageInvert": ImageInvert,
    "ImageScale": ImageScale,
    "SaveImage": SaveImage,
    "PreviewImage": PreviewImage,
    "SaveAnimatedWEBP": SaveAnimatedWEBP,
    "SaveImageWebsocket": SaveImageWebsocket,
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "LoraLoader": LoraLoader,
    "CLIPTextEncode": CLIPTextEncode,
    "EmptyLatentImage": EmptyLatentImage,
    "KSampler": KSampler,
    "VAEDecode": VAEDecode,
}

#: class_type → class of the probe nodes of the recordings
PROBE_NODES: Dict[str, type] = {
    "ProbeProgress": ProbeProgress,
    "ProbeSleep": ProbeSleep,
    "ProbeFail": ProbeFail,
    "ProbeText": ProbeText,
    "ProbeNoise": ProbeNoise,
}

__all__ = [
    "STOCK_NODES",
    "PROBE_NODES",
    "FakeModel",
    "FakeClip",
    "FakeVae",
    "FakeConditioning",
    "FakeLatent",
]
