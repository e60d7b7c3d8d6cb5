"""A real notebook, executed by nbclient in a real ipykernel against the test's FakeComfyUI:
results, image tuples and previews display inline; ``run_workflow(progress=True)`` (client
and pool) draws a widget bar and one live preview updated in place."""

from __future__ import annotations

import base64
import os
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from _components import missing, require_module

import comfysync
from comfysync.testing import FakeComfyUI

_HINT = 'pip install -e ".[dev]" (nbclient, nbformat, ipykernel, ipywidgets, tqdm)'
WIDGET = "application/vnd.jupyter.widget-view+json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def _kernel_tools() -> None:
    for module in ("nbclient", "nbformat", "ipykernel", "ipywidgets", "tqdm"):
        require_module(module, _HINT)
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        missing("python3 kernel", f"no `python3` Jupyter kernel spec; {_HINT}")


SETUP = """
import sys
from comfysync import ComfyApi, ComfyPool

URL = {url!r}

def wf(seed, steps=6, delay_ms=200, batch=2):
    return {{
        "1": {{"class_type": "EmptyImage",
              "inputs": {{"width": 16, "height": 16, "batch_size": batch, "color": 0x336699}}}},
        "2": {{"class_type": "ProbeProgress",
              "inputs": {{"image": ["1", 0], "steps": steps, "delay_ms": delay_ms,
                         "preview": "JPEG", "seed": seed}}}},
        "3": {{"class_type": "SaveImage",
              "inputs": {{"images": ["2", 0], "filename_prefix": "nb/run"}}}},
    }}

api = ComfyApi(URL).connect()
"""

CELLS = [
    SETUP,
    "result = api.run_workflow(wf(1), progress=True, timeout=60)",
    "result",
    "result.images",
    "result.images[0]",
    textwrap.dedent("""
        previews = []
        api.run_workflow(wf(2, steps=2, delay_ms=0, batch=1), on_preview=previews.append,
                         timeout=60)
        image = previews[-1].to_pil()
        print(image.format, min(image.size) > 0)
        previews[-1]
    """),
    textwrap.dedent("""
        with ComfyPool([URL]) as pool:
            pooled = pool.run_workflow(wf(3), progress=True, timeout=60)
        pooled.status
    """),
    "api.close()",
]


def _run_notebook(url: str, workdir: Path) -> Tuple[Any, List[Tuple[int, str, Dict[str, Any]]]]:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELLS[0].format(url=url))]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in CELLS[1:]]
    return _execute(nb, workdir, {})


def _execute(nb: Any, workdir: Path, env: Dict[str, str]
             ) -> Tuple[Any, List[Tuple[int, str, Dict[str, Any]]]]:
    """Run ``nb`` in a fresh ``python3`` kernel started in ``workdir`` with ``env`` added to
    this process's environment; the notebook with its outputs, and every iopub message."""
    from nbclient import NotebookClient

    class RecordingClient(NotebookClient):  # type: ignore[misc]
        """Keeps every iopub message, so that display updates (which nbclient folds into
        the output they update) can be checked."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.messages: List[Tuple[int, str, Dict[str, Any]]] = []

        def process_message(self, msg: Any, cell: Any, cell_index: int) -> Any:
            self.messages.append((cell_index, msg["msg_type"], msg["content"]))
            return super().process_message(msg, cell, cell_index)

    client = RecordingClient(nb, timeout=120, startup_timeout=90, kernel_name="python3",
                             resources={"metadata": {"path": str(workdir)}})
    # the kernel imports the comfysync under test, wherever it is checked out
    root = str(Path(comfysync.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    client.execute(env={**os.environ, **env, "PYTHONPATH": path})
    return nb, client.messages


def _outputs(nb: Any, index: int, output_type: str) -> List[Any]:
    return [o for o in nb.cells[index].outputs if o.output_type == output_type]


def _b64(data: str) -> bytes:
    return base64.b64decode(data)


@pytest.mark.timeout(300)
def test_notebook_shows_results_progress_and_live_preview(
    fake_server: FakeComfyUI, tmp_path: Path
) -> None:
    _kernel_tools()
    nb, messages = _run_notebook(fake_server.url, tmp_path)
    for cell in nb.cells:
        assert not _outputs(nb, nb.cells.index(cell), "error"), cell.outputs

    # run_workflow(progress=True): a tqdm widget, and one preview display updated in place
    shown = _outputs(nb, 1, "display_data")
    assert any(WIDGET in o.data for o in shown), shown
    previews = [o for o in shown if "image/jpeg" in o.data]
    assert len(previews) == 1, "one live preview, updated in place, not one image per step"
    assert _b64(previews[0].data["image/jpeg"]).startswith(JPEG_MAGIC)
    display_ids = {c["transient"]["display_id"] for i, t, c in messages
                   if i == 1 and t == "display_data" and "image/jpeg" in c["data"]}
    updates = [c for i, t, c in messages if i == 1 and t == "update_display_data"]
    assert len(display_ids) == 1 and updates, "the preview must be updated via its display id"
    assert {c["transient"]["display_id"] for c in updates} == display_ids
    assert all(_b64(c["data"]["image/jpeg"]).startswith(JPEG_MAGIC) for c in updates)

    # a PromptResult at the end of a cell: its images as a grid of inline PNGs
    (result,) = _outputs(nb, 2, "execute_result")
    assert "PromptResult(" in result.data["text/plain"]
    html = result.data["text/html"]
    assert html.count('<img src="data:image/png;base64,') == 2, html[:300]
    assert "success" in html and "2 images" in html

    # result.images: the same grid (a tuple that displays)
    (images,) = _outputs(nb, 3, "execute_result")
    assert images.data["text/plain"].startswith("(OutputFile(")
    assert images.data["text/html"].count('<img src="data:image/png;base64,') == 2

    # a single OutputFile: image/png, as before
    (single,) = _outputs(nb, 4, "execute_result")
    assert _b64(single.data["image/png"]).startswith(PNG_MAGIC)

    # a Preview event: displays inline, and to_pil() decodes it
    (preview,) = _outputs(nb, 5, "execute_result")
    assert _b64(preview.data["image/jpeg"]).startswith(JPEG_MAGIC)
    assert "Preview(" in preview.data["text/plain"]
    assert any("JPEG True" in o.text for o in _outputs(nb, 5, "stream"))

    # ComfyPool.run_workflow(progress=True): the same bar and live preview
    pooled = _outputs(nb, 6, "display_data")
    assert any(WIDGET in o.data for o in pooled), pooled
    assert sum("image/jpeg" in o.data for o in pooled) == 1
    assert any(t == "update_display_data" for i, t, _ in messages if i == 6)
    (status,) = _outputs(nb, 6, "execute_result")
    assert status.data["text/plain"] == "'success'"


@pytest.mark.timeout(300)
def test_the_sample_notebook_runs(fake_server: FakeComfyUI) -> None:
    """``samples/notebook.ipynb`` as a user opens it: in its folder, the server from
    ``$COMFYUI_URL``."""
    import nbformat

    _kernel_tools()
    samples = Path(__file__).resolve().parents[2] / "samples"
    nb = nbformat.read(samples / "notebook.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells), "commit the sample without outputs"
    nb, _ = _execute(nb, samples, {"COMFYUI_URL": fake_server.url})
    codes = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for index in codes:
        assert not _outputs(nb, index, "error"), nb.cells[index].outputs
    run, grid, single = codes[1], codes[2], codes[3]
    assert any(WIDGET in o.data for o in _outputs(nb, run, "display_data"))
    (shown,) = _outputs(nb, grid, "execute_result")
    assert '<img src="data:image/png;base64,' in shown.data["text/html"]
    (image,) = _outputs(nb, single, "execute_result")
    assert _b64(image.data["image/png"]).startswith(PNG_MAGIC)
