"""A model-free stand-in for the classic text-to-image chain: CheckpointLoaderSimple,
LoraLoader, CLIPTextEncode, EmptyLatentImage, KSampler, VAEDecode.

No weights and no maths: models, CLIPs, VAEs and conditionings are small frozen markers that
remember where they came from; a LATENT is ``{"samples": FakeLatent}`` whose ``state`` is a
digest of everything that would influence a real sampler (seed, steps, cfg, sampler,
scheduler, denoise, prompt texts, model and LoRAs, input latent). VAEDecode paints a
deterministic picture from that digest, so the ComfyUI default workflow runs in milliseconds
and the same prompt always gives the same image while any change gives another one.
KSampler reports per-step progress, with JPEG previews when the server's preview method is
not ``"none"``, exactly where ComfyUI's sampler callback does.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Dict, Optional, Tuple

from attrs import define, field
from PIL import Image, ImageDraw, ImageOps

from .._context import PreviewTuple, ProgressBar, current_context
from ._common import FolderAware, ImageBatch, InputTypes, stock_inputs

Lora = Tuple[str, float]


@define(frozen=True)
class FakeModel:
    """MODEL: the checkpoint it was loaded from and the LoRAs applied to it."""

    checkpoint: str
    loras: Tuple[Lora, ...] = ()


@define(frozen=True)
class FakeClip:
    """CLIP: the checkpoint it was loaded from and the LoRAs applied to it."""

    checkpoint: str
    loras: Tuple[Lora, ...] = ()


@define(frozen=True)
class FakeVae:
    """VAE: the checkpoint it was loaded from."""

    checkpoint: str


@define(frozen=True)
class FakeConditioning:
    """CONDITIONING: the encoded text and the CLIP that encoded it."""

    text: str
    clip: FakeClip


@define(frozen=True)
class FakeLatent:
    """The ``samples`` of a LATENT: size in latent pixels (1/8 of the image), batch size, and
    a digest of how it was made (``"empty"`` for EmptyLatentImage)."""

    width: int
    height: int
    batch_size: int
    state: str = field(default="empty")


Latent = Dict[str, FakeLatent]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=repr, sort_keys=True).encode()).hexdigest()


class CheckpointLoaderSimple(FolderAware):
    """Loads nothing: returns MODEL, CLIP and VAE markers named after the checkpoint. The
    ``ckpt_name`` combo lists the server's ``checkpoints`` models."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = (
        "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
    )
    OUTPUT_TOOLTIPS = (
        "The model used for denoising latents.",
        "The CLIP model used for encoding text prompts.",
        "The VAE model used for encoding and decoding images to and from latent space.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("CheckpointLoaderSimple", ckpt_name=cls.model_list("checkpoints"))

    def load_checkpoint(self, ckpt_name: str) -> Tuple[FakeModel, FakeClip, FakeVae]:
        return (FakeModel(ckpt_name), FakeClip(ckpt_name), FakeVae(ckpt_name))


class LoraLoader(FolderAware):
    """Records the LoRA and its strengths on the MODEL and CLIP markers (strength 0 leaves
    that marker unchanged, as ComfyUI skips it). ``lora_name`` lists the ``loras`` models."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MODEL", "CLIP")
    FUNCTION = "load_lora"
    CATEGORY = "loaders"
    DESCRIPTION = (
        "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents"
        " are denoised such as applying styles. Multiple LoRA nodes can be linked together."
    )
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("LoraLoader", lora_name=cls.model_list("loras"))

    def load_lora(
        self,
        model: FakeModel,
        clip: FakeClip,
        lora_name: str,
        strength_model: float,
        strength_clip: float,
    ) -> Tuple[FakeModel, FakeClip]:
        if strength_model != 0:
            model = FakeModel(model.checkpoint, model.loras + ((lora_name, strength_model),))
        if strength_clip != 0:
            clip = FakeClip(clip.checkpoint, clip.loras + ((lora_name, strength_clip),))
        return (model, clip)


class CLIPTextEncode:
    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = (
        "Encodes a text prompt using a CLIP model into an embedding that can be used to guide"
        " the diffusion model towards generating specific images."
    )
    OUTPUT_TOOLTIPS = (
        "A conditioning containing the embedded text used to guide the diffusion model.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("CLIPTextEncode")

    def encode(self, clip: FakeClip, text: str) -> Tuple[FakeConditioning]:
        return (FakeConditioning(text, clip),)


class EmptyLatentImage:
    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "generate"
    CATEGORY = "latent"
    DESCRIPTION = "Create a new batch of empty latent images to be denoised via sampling."
    OUTPUT_TOOLTIPS = ("The empty latent image batch.",)

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("EmptyLatentImage")

    def generate(self, width: int, height: int, batch_size: int = 1) -> Tuple[Latent]:
        return ({"samples": FakeLatent(width // 8, height // 8, batch_size)},)


def render(state: str, index: int, width: int, height: int) -> Image.Image:
    """The deterministic picture of latent ``state``, batch item ``index``: a two-colour
    gradient at a state-chosen angle with a few discs on it."""
    rng = random.Random(f"{state}:{index}")
    colours = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(2)]
    # rotate a gradient √2 larger than the crop, so no corner is left unfilled
    gradient = (
        Image.linear_gradient("L")
        .resize((363, 363))
        .rotate(rng.uniform(0, 360))
        .crop((53, 53, 309, 309))
    )
    picture = ImageOps.colorize(gradient.resize((width, height)), colours[0], colours[1])
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randint(3, 7)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.25) * min(width, height)
        fill = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    return picture


def _preview(state: str, seed: int, latent: FakeLatent, step: int, steps: int) -> Image.Image:
    """What latent2rgb would show after ``step`` steps: seeded noise fading into the result,
    at latent resolution (the server scales it to its preview size)."""
    size = (max(1, latent.width), max(1, latent.height))
    noise = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    return Image.blend(noise, render(state, 0, *size), (step + 1) / steps)


class KSampler:
    """Runs ``steps`` progress-bar updates (interruption points, with JPEG previews fitted
    into the server's preview size unless its preview method is ``"none"``) and returns a
    latent whose state digests every input."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"
    DESCRIPTION = (
        "Uses the provided model, positive and negative conditioning to denoise the latent image."
    )
    OUTPUT_TOOLTIPS = ("The denoised latent.",)

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("KSampler")

    def sample(
        self,
        model: FakeModel,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: FakeConditioning,
        negative: FakeConditioning,
        latent_image: Latent,
        denoise: float = 1.0,
    ) -> Tuple[Latent]:
        source = latent_image["samples"]
        state = _digest(
            "KSampler",
            model,
            seed,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative,
            source,
            denoise,
        )
        ctx = current_context()
        bar = ProgressBar(steps)
        for step in range(steps):
            shown: Optional[PreviewTuple] = None
            if ctx.preview_method != "none":
                shown = ("JPEG", _preview(state, seed, source, step, steps), ctx.preview_size)
            bar.update_absolute(step + 1, steps, shown)
        return ({"samples": FakeLatent(source.width, source.height, source.batch_size, state)},)


class VAEDecode:
    """Paints each batch item of the latent at 8× its size (see :func:`render`)."""

    RELATIVE_PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "latent"
    DESCRIPTION = "Decodes latent images back into pixel space images."
    OUTPUT_TOOLTIPS = ("The decoded image.",)

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return stock_inputs("VAEDecode")

    def decode(self, vae: FakeVae, samples: Latent) -> Tuple[ImageBatch]:
        latent = samples["samples"]
        state = _digest("VAEDecode", vae, latent)
        width, height = max(1, latent.width * 8), max(1, latent.height * 8)
        return ([render(state, i, width, height) for i in range(latent.batch_size)],)
