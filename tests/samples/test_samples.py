"""Every script in ``samples/`` runs, as a user would run it, against FakeComfyUI.

Each sample is started with ``python samples/<name>.py <server url>`` in a temporary working
directory (they write into ``./sample-out``), with a bounded timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
TIMEOUT = 60


def run_sample(name: str, args: List[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith("COMFYUI_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, str(SAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_every_sample_is_tested() -> None:
    tested = {"quickstart.py", "progress_and_previews.py", "upload_img2img.py",
              "batch_templating.py", "event_log_repl.py", "cancel_and_timeout.py",
              "http_tracker_proxy.py", "pool.py", "cloud_or_local.py"}
    assert {p.name for p in SAMPLES.glob("*.py")} == tested


def test_samples_stay_short() -> None:
    for path in SAMPLES.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 65, path.name


def test_quickstart(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("quickstart.py", [fake_server.url], tmp_path).stdout
    assert "finished in" in out
    assert len(list((tmp_path / "sample-out" / "quickstart").glob("*.png"))) == 1


def test_progress_and_previews(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("progress_and_previews.py", [fake_server.url], tmp_path).stdout
    assert "8 previews received" in out and "8/8" in out
    folder = tmp_path / "sample-out" / "progress"
    assert len(list(folder.glob("last_preview.*"))) == 1
    assert len(list(folder.glob("ComfyUI*.png"))) == 1


def test_upload_img2img(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("upload_img2img.py", [fake_server.url], tmp_path).stdout
    assert "uploaded input.png as comfysync-samples/input.png" in out
    (saved,) = list((tmp_path / "sample-out" / "img2img").glob("inverted*.png"))
    from PIL import Image

    with Image.open(SAMPLES / "assets" / "input.png") as src, Image.open(saved) as dst:
        r, g, b = src.convert("RGB").getpixel((0, 0))
        assert dst.convert("RGB").getpixel((0, 0)) == (255 - r, 255 - g, 255 - b)


def test_batch_templating(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("batch_templating.py", [fake_server.url], tmp_path).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 3 and "a red fox in the snow" in lines[0]
    assert len(list((tmp_path / "sample-out" / "batch").glob("batch_*.png"))) == 3


def test_event_log_repl(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("event_log_repl.py", [fake_server.url], tmp_path).stdout
    for name in ("execution_start", "executing", "progress", "b_preview", "executed",
                 "execution_success"):
        assert f" {name} " in out, name
    assert "text outputs: {'3': ['done'" in out


def test_cancel_and_timeout(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("cancel_and_timeout.py", [fake_server.url], tmp_path).stdout
    assert "timed out:" in out
    assert "running job ended as 'interrupted'" in out
    assert "waiting job ended as" in out
    assert "queue now: 0 prompt(s)" in out


def test_http_tracker_behind_a_prefix(fake_server: Any, tmp_path: Path) -> None:
    # ComfyUI serves every route under /api as well: a real path prefix for the client.
    out = run_sample("http_tracker_proxy.py", [fake_server.url + "/api"], tmp_path).stdout
    assert "/api" in out.splitlines()[0]
    assert "queue remaining: 0" in out and "success" in out


@pytest.fixture
def second_server() -> Iterator[Any]:
    from comfysync.testing import FakeComfyUI

    with FakeComfyUI() as server:
        yield server


def test_pool(fake_server: Any, second_server: Any, tmp_path: Path) -> None:
    out = run_sample("pool.py", [fake_server.url, second_server.url], tmp_path).stdout
    jobs = sorted(line for line in out.splitlines() if line.startswith("job "))
    assert len(jobs) == 6 and all("success" in line for line in jobs)
    assert all(f"['job {i}'" in line for i, line in enumerate(jobs))
    servers = {line.split(" on ")[1].split(" ->")[0] for line in jobs}
    assert servers <= {fake_server.url, second_server.url}
    assert f"{fake_server.url}: up" in out and f"{second_server.url}: up" in out


def test_cloud_or_local_native(fake_server: Any, tmp_path: Path) -> None:
    out = run_sample("cloud_or_local.py", [fake_server.url], tmp_path).stdout
    assert "speaks the native surface" in out and ": success" in out
    assert len(list((tmp_path / "sample-out" / "cloud_or_local").glob("*.png"))) == 1


def test_cloud_or_local_v2(tmp_path: Path) -> None:
    from comfysync.testing import FakeComfyUI
    from tests.v2.conftest import Proxy

    with FakeComfyUI(jobs_api=True) as upstream:
        proxy = Proxy(upstream.url)
        try:
            out = run_sample("cloud_or_local.py", [proxy.url], tmp_path).stdout
        finally:
            proxy.stop()
    assert "speaks the v2 surface" in out and ": success" in out
    assert len(list((tmp_path / "sample-out" / "cloud_or_local").glob("*.png"))) == 1
