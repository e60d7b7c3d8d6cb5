"""``run_workflow(progress=True)`` outside a notebook (a text bar on stderr) and the
display hooks of results and previews, without a kernel."""

from __future__ import annotations

import base64
import io
import pickle
import sys
from typing import Any, Dict

import pytest
from PIL import Image

from comfysync import ComfyApi, ComfyPool, events
from comfysync._display import GRID_MAX
from comfysync._rest.models import HistoryEntry
from comfysync._results import OutputFile, OutputFiles, build_result
from comfysync.errors import PromptExecutionError, PromptTimeoutError
from comfysync.testing import FakeComfyUI


def wf(seed: int, *, steps: int = 4, delay_ms: int = 20, fail: bool = False) -> Dict[str, Any]:
    graph: Dict[str, Any] = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeProgress",
              "inputs": {"image": ["1", 0], "steps": steps, "delay_ms": delay_ms,
                         "preview": "JPEG", "seed": seed}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": "nb/t"}},
    }
    if fail:
        graph["3"] = {"class_type": "ProbeFail", "inputs": {"image": ["2", 0], "message": "boom"}}
        graph["4"] = {"class_type": "ProbeText", "inputs": {"text": "t", "image": ["3", 0]}}
    return graph


def test_progress_draws_a_text_bar_on_a_terminal(
    fake_server: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    with ComfyApi(fake_server.url) as api:
        result = api.run_workflow(wf(1), progress=True, timeout=30)
    err = capsys.readouterr().err
    assert result.status == "success"
    assert "100%" in err and "3/3 nodes, done" in err
    assert f"prompt {result.prompt_id[:8]}" in err


def test_pool_progress_draws_a_text_bar(
    fake_server: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    with ComfyPool([fake_server.url]) as pool:
        result = pool.run_workflow(wf(2), progress=True, timeout=30)
    err = capsys.readouterr().err
    assert "3/3 nodes, done" in err and f"prompt {result.prompt_id[:8]}" in err


def test_progress_keeps_the_outcome_of_a_failing_prompt(
    fake_server: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    with ComfyApi(fake_server.url) as api:
        with pytest.raises(PromptExecutionError, match="boom"):
            api.run_workflow(wf(3, fail=True), progress=True, timeout=30)
        with pytest.raises(PromptTimeoutError):
            api.run_workflow(wf(4, steps=50, delay_ms=100), progress=True, timeout=0.3)
    err = capsys.readouterr().err
    assert "PromptExecutionError" in err and "PromptTimeoutError" in err


def test_progress_without_tqdm_fails_before_sending(
    fake_server: FakeComfyUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with ComfyApi(fake_server.url) as api:
        with pytest.raises(ImportError, match=r"comfysync\[notebook\]"):
            api.run_workflow(wf(5), progress=True, timeout=30)
    with ComfyPool([fake_server.url]) as pool:
        with pytest.raises(ImportError, match="needs tqdm"):
            pool.run_workflow(wf(6), progress=True, timeout=30)
    assert fake_server.history() == {}
    assert not any(r.path == "/prompt" and r.method == "POST" for r in fake_server.requests)


# --------------------------------------------------------------------------- display hooks


def _image(fmt: str, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, format=fmt)
    return buf.getvalue()


class Files:
    def __init__(self, data: Dict[str, bytes]) -> None:
        self.data = data

    def get_image(self, ref: Any) -> bytes:
        return self.data[ref.filename]

    def download(self, ref: Any, dest: Any) -> Any:
        raise AssertionError("display never downloads to disk")

    def get_path_image(self, ref: Any) -> str:
        return f"http://h/view?filename={ref.filename}"


def _result(names: Dict[str, bytes]) -> Any:
    items = [{"filename": n, "type": "output"} for n in names]
    entry = HistoryEntry.from_wire("p1", {"outputs": {"9": {"images": items}}})
    return build_result("p1", history=entry, executed={}, client=Files(names))


def test_result_grid_keeps_jpeg_and_converts_what_browsers_cannot_show() -> None:
    r = _result({"a.png": _image("PNG"), "b.jpg": _image("JPEG"), "c.tiff": _image("TIFF"),
                 "d.webp": _image("WEBP"), "e.png": b"not an image"})
    html = r._repr_mimebundle_()["text/html"]
    assert html.count("data:image/png;base64,") == 2  # a.png, c.tiff converted
    assert html.count("data:image/jpeg;base64,") == 1
    assert html.count("data:image/webp;base64,") == 1  # browsers show WebP as it is
    assert "e.png (cannot be shown)" in html
    assert "5 images" in html


def test_grid_is_capped_and_escapes_names() -> None:
    names = {f"<b>{i}.png": _image("PNG") for i in range(GRID_MAX + 3)}
    bundle = _result(names).images._repr_mimebundle_()
    assert bundle["text/html"].count("<img ") == GRID_MAX
    assert "… and 3 more" in bundle["text/html"]
    assert "<b>" not in bundle["text/html"] and "&lt;b&gt;0.png" in bundle["text/html"]
    assert "image/png" not in bundle  # several images: only the grid


def test_single_image_tuple_also_offers_the_image_itself() -> None:
    data = _image("PNG")
    bundle = _result({"a.png": data}).images._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]) == data


def test_file_tuples_stay_tuples() -> None:
    r = _result({"a.png": _image("PNG")})
    assert isinstance(r.images, OutputFiles) and isinstance(r.files, tuple)
    assert r.images == tuple(r.images) and r.images[0].filename == "a.png"
    assert isinstance(r.files_of("9"), OutputFiles)
    plain = OutputFile("a.png", "", "output", "9", "u")
    clone = pickle.loads(pickle.dumps(OutputFiles([plain])))
    assert isinstance(clone, OutputFiles) and clone == (plain,)


def test_text_only_result_shows_its_text() -> None:
    entry = HistoryEntry.from_wire("p2", {"outputs": {"4": {"text": ["<hi>"]}}})
    r = build_result("p2", history=entry, executed={})
    bundle = r._repr_mimebundle_()
    assert "0 images" in bundle["text/html"] and "&lt;hi&gt;" in bundle["text/html"]


def test_preview_to_pil_and_display() -> None:
    jpeg = _image("JPEG")
    preview = events.Preview(image=jpeg, mime_type="image/jpeg", node_id="2")
    assert preview.to_pil().size == (4, 3)
    bundle = preview._repr_mimebundle_()
    assert base64.b64decode(bundle["image/jpeg"]) == jpeg
    webp = events.Preview(image=_image("WEBP"), mime_type="image/webp")
    assert base64.b64decode(webp._repr_mimebundle_()["image/png"]).startswith(b"\x89PNG")
    broken = events.Preview(image=b"xx", mime_type="image/webp")
    assert set(broken._repr_mimebundle_()) == {"text/plain"}


def test_preview_to_pil_without_pillow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"comfysync\[pil\]"):
        events.Preview(image=b"x").to_pil()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself needs POSIX")
def test_ctrl_c_during_progress_cancels_the_prompt(
    fake_server: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    """The display waits inside run_workflow's own interrupt handling: Ctrl-C while the bar
    is drawn still cancels the prompt on the server, and the bar says how it ended."""
    import os
    import signal

    def ctrl_c(event: events.Progress) -> None:  # listener thread: Ctrl-C hits the main one
        if event.value == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with ComfyApi(fake_server.url) as api:
        with pytest.raises(KeyboardInterrupt):
            api.run_workflow(wf(7, steps=200, delay_ms=50), progress=True, timeout=60,
                             on_progress=ctrl_c)
        fake_server.wait_for_idle(timeout=10)
    (entry,) = [e for e in fake_server.history().values()]
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
    assert "KeyboardInterrupt" in capsys.readouterr().err
