"""Stock image nodes run directly under a recording context."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest
from fake_node_support import NodeRunner, RecordingContext
from PIL import Image

from comfysync.testing._builtin_nodes._images import LoadImage


def test_empty_image_colour_and_batch(run_node: NodeRunner) -> None:
    (images,) = run_node("EmptyImage", width=5, height=3, batch_size=2, color=0x336699)
    assert len(images) == 2
    assert all(im.mode == "RGB" and im.size == (5, 3) for im in images)
    assert images[1].getpixel((4, 2)) == (0x33, 0x66, 0x99)


def test_invert(run_node: NodeRunner) -> None:
    (images,) = run_node("EmptyImage", width=2, height=2, batch_size=1, color=0x102030)
    (inverted,) = run_node("ImageInvert", image=images)
    assert inverted[0].getpixel((0, 0)) == (0xEF, 0xDF, 0xCF)


@pytest.mark.parametrize(
    "width, height, crop, size",
    [
        (0, 0, "disabled", (40, 20)),
        (0, 10, "disabled", (20, 10)),
        (80, 0, "disabled", (80, 40)),
        (30, 30, "disabled", (30, 30)),
        (30, 30, "center", (30, 30)),
    ],
)
def test_scale_sizes(
    run_node: NodeRunner, width: int, height: int, crop: str, size: Tuple[int, int]
) -> None:
    base = Image.new("RGB", (40, 20), (0, 0, 0))
    (scaled,) = run_node(
        "ImageScale", image=[base], upscale_method="bilinear", width=width, height=height, crop=crop
    )
    assert scaled[0].size == size


def test_scale_center_crop_keeps_the_middle(run_node: NodeRunner) -> None:
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    wide.paste((0, 255, 0), (10, 0, 30, 20))  # green middle square
    (scaled,) = run_node(
        "ImageScale", image=[wide], upscale_method="nearest-exact", width=4, height=4, crop="center"
    )
    assert scaled[0].getpixel((0, 0)) == (0, 255, 0)
    (stretched,) = run_node(
        "ImageScale", image=[wide], upscale_method="area", width=4, height=4, crop="disabled"
    )
    assert stretched[0].getpixel((0, 0)) == (255, 0, 0)


def test_load_image_with_alpha(run_node: NodeRunner, ctx: RecordingContext) -> None:
    rgba = Image.new("RGBA", (6, 4), (10, 20, 30, 255))
    rgba.putpixel((0, 0), (10, 20, 30, 0))
    rgba.save(ctx.input_dir / "a.png")
    images, masks = run_node("LoadImage", image="a.png")
    assert images[0].mode == "RGB" and images[0].size == (6, 4)
    assert images[0].getpixel((1, 1)) == (10, 20, 30)
    assert masks[0].mode == "L" and masks[0].size == (6, 4)
    assert masks[0].getpixel((0, 0)) == 255 and masks[0].getpixel((1, 1)) == 0


def test_load_image_without_alpha_and_annotations(
    run_node: NodeRunner, ctx: RecordingContext
) -> None:
    Image.new("RGB", (3, 3), (1, 2, 3)).save(ctx.output_dir / "o.png")
    images, masks = run_node("LoadImage", image="o.png [output]")
    assert images[0].getpixel((0, 0)) == (1, 2, 3)
    assert masks[0].size == (64, 64) and masks[0].getextrema() == (0, 0)
    with pytest.raises(FileNotFoundError):
        run_node("LoadImage", image="o.png")  # default folder: input
    with pytest.raises(FileNotFoundError):
        run_node("LoadImage", image="../output/o.png")


def test_load_image_animation_keeps_same_size_frames(
    run_node: NodeRunner, ctx: RecordingContext
) -> None:
    frames = [Image.new("RGB", (4, 4), (c, 0, 0)) for c in (0, 100, 200)]
    frames[0].save(ctx.input_dir / "anim.gif", save_all=True, append_images=frames[1:])
    images, masks = run_node("LoadImage", image="anim.gif")
    assert len(images) == len(masks) == 3


def test_load_image_is_changed_follows_content(ctx: RecordingContext) -> None:
    path = ctx.input_dir / "c.png"
    Image.new("RGB", (2, 2), (0, 0, 0)).save(path)
    first = LoadImage.IS_CHANGED("c.png")
    assert first == LoadImage.IS_CHANGED("c.png") != ""
    Image.new("RGB", (2, 2), (9, 9, 9)).save(path)
    assert LoadImage.IS_CHANGED("c.png") != first


@pytest.mark.parametrize(
    "channel, expected", [("red", 10), ("green", 20), ("blue", 30), ("alpha", 155)]
)
def test_load_image_mask_channels(
    run_node: NodeRunner, ctx: RecordingContext, channel: str, expected: int
) -> None:
    Image.new("RGBA", (2, 2), (10, 20, 30, 100)).save(ctx.input_dir / "m.png")
    (masks,) = run_node("LoadImageMask", image="m.png", channel=channel)
    assert masks[0].mode == "L" and masks[0].getpixel((0, 0)) == expected


def test_load_image_mask_of_rgb_file_is_opaque(run_node: NodeRunner, ctx: RecordingContext) -> None:
    Image.new("RGB", (2, 2), (10, 20, 30)).save(ctx.input_dir / "rgb.jpg")
    (masks,) = run_node("LoadImageMask", image="rgb.jpg", channel="alpha")
    assert masks[0].getpixel((0, 0)) == 0


def test_unbound_classes_use_the_running_context(ctx: RecordingContext, tmp_path: Path) -> None:
    Image.new("RGB", (2, 2)).save(ctx.input_dir / "u.png")
    assert LoadImage.FOLDERS is None
    assert LoadImage.INPUT_TYPES()["required"]["image"][0] == ["u.png"]
    assert LoadImage.VALIDATE_INPUTS("u.png") is True
    assert LoadImage.VALIDATE_INPUTS("v.png") == "Invalid image file: v.png"
