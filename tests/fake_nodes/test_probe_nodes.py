"""The probe nodes of the recordings: progress, previews, interruption, failure, text, noise."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest
from fake_node_support import NodeRunner, RecordingContext
from PIL import Image

from comfysync.testing._context import NodeInterrupted


def _image(run_node: NodeRunner, width: int = 64, height: int = 64) -> List[Image.Image]:
    (images,) = run_node("EmptyImage", width=width, height=height, batch_size=1, color=0x336699)
    return list(images)


@pytest.mark.parametrize("preview", ["JPEG", "PNG"])
def test_progress_with_previews(run_node: NodeRunner, ctx: RecordingContext, preview: str) -> None:
    image = _image(run_node)
    (out,) = run_node("ProbeProgress", image=image, steps=4, delay_ms=5, preview=preview, seed=1)
    assert out is image
    assert [(v, m) for v, m, _ in ctx.progress_calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for _, _, shown in ctx.progress_calls:
        assert shown is not None
        assert shown[0] == preview and shown[1] is image[0] and shown[2] == 512
    assert ctx.slept == [0.005] * 4


def test_progress_without_previews(run_node: NodeRunner, ctx: RecordingContext) -> None:
    run_node("ProbeProgress", image=_image(run_node), steps=2, delay_ms=0, preview="none", seed=0)
    assert ctx.progress_calls == [(1, 2, None), (2, 2, None)]


def test_progress_is_interruptible_at_an_update(
    run_node: NodeRunner, ctx: RecordingContext
) -> None:
    def interrupt_on_second(count: int) -> None:
        if count == 2:
            ctx.interrupt.set()

    ctx.on_progress = interrupt_on_second
    with pytest.raises(NodeInterrupted):
        run_node(
            "ProbeProgress", image=_image(run_node), steps=10, delay_ms=0, preview="none", seed=0
        )
    assert len(ctx.progress_calls) == 2
    assert not ctx.interrupt.is_set()  # the flag is consumed


def test_sleep_passes_through_and_wakes_on_interrupt(
    run_node: NodeRunner, ctx: RecordingContext
) -> None:
    image = _image(run_node)
    assert run_node("ProbeSleep", image=image, seconds=0.0, seed=3) == (image,)
    timer = threading.Timer(0.05, ctx.interrupt.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(NodeInterrupted):
            run_node("ProbeSleep", image=image, seconds=30.0, seed=4)
    finally:
        timer.cancel()
        timer.join(timeout=5)
    assert time.monotonic() - started < 10
    assert ctx.slept == [0.0, 30.0]


def test_fail_raises_the_message(run_node: NodeRunner) -> None:
    with pytest.raises(RuntimeError, match="^boom from probe$"):
        run_node("ProbeFail", image=_image(run_node), message="boom from probe")


def test_text_with_and_without_image(run_node: NodeRunner) -> None:
    assert run_node("ProbeText", text="done", image=_image(run_node)) == {
        "ui": {"text": ["done", "(1, 64, 64, 3)"]},
        "result": (),
    }
    assert run_node("ProbeText", text="hello") == {"ui": {"text": ["hello"]}, "result": ()}
    (wide,) = run_node("EmptyImage", width=30, height=20, batch_size=3, color=0)
    assert run_node("ProbeText", text="", image=wide)["ui"]["text"][1] == "(3, 20, 30, 3)"


def test_noise_is_seeded_and_incompressible(run_node: NodeRunner) -> None:
    (first,) = run_node("ProbeNoise", width=32, height=16, batch_size=2, seed=7)
    (again,) = run_node("ProbeNoise", width=32, height=16, batch_size=2, seed=7)
    (other,) = run_node("ProbeNoise", width=32, height=16, batch_size=2, seed=8)
    assert [im.size for im in first] == [(32, 16), (32, 16)]
    assert [im.tobytes() for im in first] == [im.tobytes() for im in again]
    assert first[0].tobytes() != other[0].tobytes()
    assert first[0].tobytes() != first[1].tobytes()
    assert len(set(first[0].tobytes())) > 200  # random bytes, not a flat colour
