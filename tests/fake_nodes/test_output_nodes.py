"""SaveImage, PreviewImage, SaveAnimatedWEBP and SaveImageWebsocket: ComfyUI's file naming,
metadata and UI answers."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import List

import pytest
from fake_node_support import NodeRunner, RecordingContext
from PIL import Image

from comfysync.testing._builtin_nodes._save import save_image_path


def _batch(run_node: NodeRunner, size: int = 2, color: int = 0x112233) -> List[Image.Image]:
    (images,) = run_node("EmptyImage", width=8, height=4, batch_size=size, color=color)
    return list(images)


def test_save_image_names_subfolder_and_counter(
    run_node: NodeRunner, ctx: RecordingContext
) -> None:
    images = _batch(run_node)
    first = run_node("SaveImage", images=images, filename_prefix="sdk/big")
    assert first == {
        "ui": {
            "images": [
                {"filename": "big_00001_.png", "subfolder": "sdk", "type": "output"},
                {"filename": "big_00002_.png", "subfolder": "sdk", "type": "output"},
            ]
        }
    }
    second = run_node("SaveImage", images=images[:1], filename_prefix="sdk/big")
    assert second["ui"]["images"][0]["filename"] == "big_00003_.png"
    other = run_node("SaveImage", images=images[:1], filename_prefix="bigger")
    assert other["ui"]["images"] == [
        {"filename": "bigger_00001_.png", "subfolder": "", "type": "output"}
    ]
    assert sorted(os.listdir(ctx.output_dir / "sdk")) == [
        "big_00001_.png",
        "big_00002_.png",
        "big_00003_.png",
    ]
    with Image.open(ctx.output_dir / "sdk" / "big_00002_.png") as saved:
        assert saved.size == (8, 4) and saved.convert("RGB").getpixel((0, 0)) == (0x11, 0x22, 0x33)


def test_counter_continues_after_the_highest_existing(ctx: RecordingContext) -> None:
    for name in ("rec_00007_.png", "rec_00002_.png", "rec_x_.png", "record_00099_.png", "rec.txt"):
        (ctx.output_dir / name).write_bytes(b"")
    folder, filename, counter, subfolder = save_image_path("rec", ctx.output_dir)
    assert (folder, filename, counter, subfolder) == (ctx.output_dir.resolve(), "rec", 8, "")


def test_prefix_variables_and_batch_number(run_node: NodeRunner) -> None:
    images = _batch(run_node)
    result = run_node("SaveImage", images=images, filename_prefix="%width%x%height%/b%batch_num%")
    assert [x["filename"] for x in result["ui"]["images"]] == ["b0_00001_.png", "b1_00002_.png"]
    assert result["ui"]["images"][0]["subfolder"] == "8x4"


def test_saving_outside_the_output_folder_is_refused(run_node: NodeRunner) -> None:
    with pytest.raises(Exception, match="Saving image outside the output folder is not allowed"):
        run_node("SaveImage", images=_batch(run_node), filename_prefix="../escape")


def test_png_carries_prompt_and_workflow(run_node: NodeRunner, ctx: RecordingContext) -> None:
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    extra = {"workflow": {"nodes": [1, 2]}, "note": "hi"}
    result = run_node(
        "SaveImage",
        images=_batch(run_node, 1),
        filename_prefix="m",
        prompt=prompt,
        extra_pnginfo=extra,
    )
    with Image.open(ctx.output_dir / result["ui"]["images"][0]["filename"]) as saved:
        text = saved.text
    assert json.loads(text["prompt"]) == prompt
    assert json.loads(text["workflow"]) == extra["workflow"]
    assert json.loads(text["note"]) == "hi"
    plain = run_node("SaveImage", images=_batch(run_node, 1), filename_prefix="p")
    with Image.open(ctx.output_dir / plain["ui"]["images"][0]["filename"]) as saved:
        assert "prompt" not in saved.text


def test_preview_image_goes_to_temp(run_node: NodeRunner, ctx: RecordingContext) -> None:
    result = run_node("PreviewImage", images=_batch(run_node))
    entries = result["ui"]["images"]
    assert [e["type"] for e in entries] == ["temp", "temp"]
    assert [e["subfolder"] for e in entries] == ["", ""]
    match = re.fullmatch(r"(ComfyUI_temp_[a-z]{5})_00001_\.png", entries[0]["filename"])
    assert match is not None
    assert entries[1]["filename"] == f"{match.group(1)}_00002_.png"
    assert sorted(os.listdir(ctx.temp_dir)) == [e["filename"] for e in entries]
    assert os.listdir(ctx.output_dir) == []


def test_animated_webp(run_node: NodeRunner, ctx: RecordingContext) -> None:
    frames = [Image.new("RGB", (8, 4), (c, 0, 0)) for c in (0, 120, 240)]  # distinct frames
    result = run_node(
        "SaveAnimatedWEBP",
        images=frames,
        filename_prefix="anim",
        fps=2.0,
        lossless=False,
        quality=50,
        method="default",
        prompt={"1": {}},
    )
    assert result == {
        "ui": {
            "images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}],
            "animated": [True],
        }
    }
    with Image.open(ctx.output_dir / "anim_00001_.webp") as saved:
        assert saved.format == "WEBP" and getattr(saved, "n_frames", 1) == 3
    single = run_node(
        "SaveAnimatedWEBP",
        images=frames[:1],
        filename_prefix="anim",
        fps=6.0,
        lossless=True,
        quality=80,
        method="fastest",
    )
    assert single["ui"]["animated"] == [False]
    assert single["ui"]["images"][0]["filename"] == "anim_00002_.webp"


def test_save_image_websocket_streams_png_previews(
    run_node: NodeRunner, ctx: RecordingContext
) -> None:
    images = _batch(run_node, 2)
    assert run_node("SaveImageWebsocket", images=images) == ()
    assert [(v, m) for v, m, _ in ctx.progress_calls] == [(0, 2), (1, 2)]
    previews = [p for _, _, p in ctx.progress_calls]
    assert [(p[0], p[2]) for p in previews if p is not None] == [("PNG", None), ("PNG", None)]
    assert [p[1] for p in previews if p is not None] == images  # full size, unscaled
    assert os.listdir(ctx.output_dir) == []


def test_output_nodes_write_into_context_folders(run_node: NodeRunner, tmp_path: Path) -> None:
    """The folders come from the running context, not from the process."""
    result = run_node("SaveImage", images=_batch(run_node, 1), filename_prefix="here")
    assert (tmp_path / "output" / result["ui"]["images"][0]["filename"]).is_file()
