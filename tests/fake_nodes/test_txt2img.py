"""The model-free text-to-image chain: ComfyUI's default workflow validates and runs,
deterministically, with per-step sampler progress and previews."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict

import pytest
from fake_node_support import NodeRunner, RecordingContext, run_graph
from PIL import Image

from comfysync.testing._builtin_nodes import FakeClip, FakeLatent, FakeModel
from comfysync.testing._context import NodeInterrupted
from comfysync.testing._nodes import NodeRegistry, default_registry
from comfysync.testing._validation import validate_prompt

DEFAULT_WORKFLOW = Path(__file__).resolve().parents[1] / "data" / "default_workflow_api.json"


def _workflow() -> Dict[str, Any]:
    with DEFAULT_WORKFLOW.open(encoding="utf-8") as f:
        workflow: Dict[str, Any] = json.load(f)
    return workflow


def _run(workflow: Dict[str, Any], registry: NodeRegistry, ctx: RecordingContext) -> Image.Image:
    result = validate_prompt(workflow, registry)
    assert result.ok, result.node_errors
    uis = run_graph(result.prompt, registry, ctx, result.outputs, {"workflow": {"id": "w"}})
    (entry,) = uis["9"]["images"]
    with Image.open(ctx.output_dir / entry["subfolder"] / entry["filename"]) as saved:
        saved.load()
        image: Image.Image = saved
        return image


def test_default_workflow_runs_and_is_deterministic(
    registry: NodeRegistry, ctx: RecordingContext
) -> None:
    workflow = _workflow()
    assert set(validate_prompt(workflow, registry).outputs) == {"9"}
    first = _run(workflow, registry, ctx)
    assert first.size == (512, 512) and first.format == "PNG"
    assert json.loads(first.info["prompt"])["3"]["class_type"] == "KSampler"
    assert json.loads(first.info["workflow"]) == {"id": "w"}
    second = _run(workflow, registry, ctx)
    assert first.tobytes() == second.tobytes()
    assert sorted(p.name for p in ctx.output_dir.iterdir()) == [
        "ComfyUI_00001_.png",
        "ComfyUI_00002_.png",
    ]
    assert len(first.getcolors(maxcolors=1_000_000) or []) > 10  # a picture, not a flat fill


@pytest.mark.parametrize(
    "node, name, value",
    [
        ("3", "seed", 1),
        ("3", "steps", 2),
        ("3", "cfg", 7.5),
        ("6", "text", "a cat"),
        ("7", "text", "blurry"),
        ("4", "ckpt_name", "v1-5-pruned-emaonly.safetensors"),
    ],
)
def test_every_sampling_input_changes_the_image(
    registry: NodeRegistry, ctx: RecordingContext, node: str, name: str, value: Any
) -> None:
    workflow = _workflow()
    workflow["3"]["inputs"]["steps"] = 3
    base = _run(workflow, registry, ctx)
    changed = copy.deepcopy(workflow)
    changed[node]["inputs"][name] = value
    assert _run(changed, registry, ctx).tobytes() != base.tobytes()


def test_latent_size_and_batch(registry: NodeRegistry, ctx: RecordingContext) -> None:
    workflow = _workflow()
    workflow["3"]["inputs"]["steps"] = 1
    workflow["5"]["inputs"].update({"width": 100, "height": 64, "batch_size": 2})
    result = validate_prompt(workflow, registry)
    uis = run_graph(result.prompt, registry, ctx, result.outputs)
    names = [e["filename"] for e in uis["9"]["images"]]
    assert names == ["ComfyUI_00001_.png", "ComfyUI_00002_.png"]
    sizes = set()
    for name in names:
        with Image.open(ctx.output_dir / name) as saved:
            sizes.add(saved.size)
    assert sizes == {(96, 64)}  # latent is width // 8, decoded ×8, as in ComfyUI


def test_sampler_progress_and_previews(run_node: NodeRunner, ctx: RecordingContext) -> None:
    model, clip, _ = run_node("CheckpointLoaderSimple", ckpt_name="m")
    (positive,) = run_node("CLIPTextEncode", clip=clip, text="x")
    (latent,) = run_node("EmptyLatentImage", width=64, height=48, batch_size=1)
    ctx.preview_size = 256
    args = dict(
        model=model,
        seed=5,
        steps=3,
        cfg=8.0,
        sampler_name="euler",
        scheduler="normal",
        positive=positive,
        negative=positive,
        latent_image=latent,
        denoise=1.0,
    )
    (out,) = run_node("KSampler", **args)
    assert [(v, m) for v, m, _ in ctx.progress_calls] == [(1, 3), (2, 3), (3, 3)]
    for _, _, shown in ctx.progress_calls:
        assert shown is not None and shown[0] == "JPEG" and shown[2] == 256
        assert shown[1].size == (8, 6)  # latent resolution; the server fits it to 256
    assert isinstance(out["samples"], FakeLatent) and out["samples"].state != "empty"

    ctx.progress_calls.clear()
    ctx.preview_method = "none"
    (again,) = run_node("KSampler", **args)
    assert ctx.progress_calls == [(1, 3, None), (2, 3, None), (3, 3, None)]
    assert again == out  # previews do not change the result


def test_sampler_is_interruptible(run_node: NodeRunner, ctx: RecordingContext) -> None:
    model, clip, _ = run_node("CheckpointLoaderSimple", ckpt_name="m")
    (cond,) = run_node("CLIPTextEncode", clip=clip, text="x")
    (latent,) = run_node("EmptyLatentImage", width=16, height=16, batch_size=1)
    ctx.interrupt.set()
    with pytest.raises(NodeInterrupted):
        run_node(
            "KSampler",
            model=model,
            seed=0,
            steps=50,
            cfg=1.0,
            sampler_name="euler",
            scheduler="normal",
            positive=cond,
            negative=cond,
            latent_image=latent,
        )
    assert len(ctx.progress_calls) == 1


def test_lora_loader_marks_model_and_clip(run_node: NodeRunner) -> None:
    model, clip, vae = run_node("CheckpointLoaderSimple", ckpt_name="base.safetensors")
    assert (model, clip) == (FakeModel("base.safetensors"), FakeClip("base.safetensors"))
    new_model, new_clip = run_node(
        "LoraLoader", model=model, clip=clip, lora_name="l", strength_model=0.5, strength_clip=0
    )
    assert new_model.loras == (("l", 0.5),)
    assert new_clip is clip


def test_workflow_with_lora_validates_against_registry_models(ctx: RecordingContext) -> None:
    workflow = _workflow()
    workflow["10"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["4", 0],
            "clip": ["4", 1],
            "lora_name": "style.safetensors",
            "strength_model": 1.0,
            "strength_clip": 1.0,
        },
    }
    workflow["3"]["inputs"]["model"] = ["10", 0]
    workflow["3"]["inputs"]["steps"] = 1
    registry = default_registry(input_dir=ctx.input_dir)
    errors = validate_prompt(workflow, registry).node_errors
    assert errors["10"]["errors"][0]["type"] == "value_not_in_list"
    registry.models["loras"].append("style.safetensors")
    result = validate_prompt(workflow, registry)
    assert result.ok
    assert run_graph(result.prompt, registry, ctx, result.outputs)["9"]["images"]
