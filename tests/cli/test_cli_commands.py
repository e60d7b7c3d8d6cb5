"""The ``comfysync`` commands against FakeComfyUI, in-process through ``cli.main(argv)``.

The subprocess behaviour (console entry, Ctrl-C, exit codes seen by a shell) is covered in
``test_cli_subprocess.py``; here the commands run in the test process for speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from _cli import run_cli

from comfysync import ComfyApi, cli, errors

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "workflows"

INVERT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1,
                                                  "color": 255}, "_meta": {"title": "Canvas"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cli"}},
}


def write(tmp_path: Path, data: Dict[str, Any], name: str = "wf.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_run_saves_outputs_and_prints_paths(fake_server: Any, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, INVERT)
    code, out, err = run_cli(capsys, "run", wf, "--server", fake_server.url, "--out", "o")
    assert code == 0, err
    saved = [line[len("saved "):] for line in out.splitlines() if line.startswith("saved ")]
    assert len(saved) == 1 and Path(saved[0]).name.startswith("cli")
    assert Path(saved[0]).parent == Path("o") and Path(saved[0]).stat().st_size > 0
    assert "succeeded" in out and err == ""  # stderr is not a terminal: no progress drawn

    # the same again: the fully cached run also completes, and never overwrites the first file
    code, out2, _ = run_cli(capsys, "run", wf, "--server", fake_server.url, "--out", "o")
    assert code == 0
    assert len(list(Path("o").iterdir())) == 2


def test_run_json_set_and_plain_progress(fake_server: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    wf = write(tmp_path, INVERT)
    code, out, err = run_cli(capsys, "run", wf, "--server", fake_server.url, "--json",
                             "--set", "Canvas.width=24", "--set", "3.filename_prefix=set-by-cli",
                             "--progress", "plain")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"prompt_id", "status", "server", "duration", "files", "text",
                        "cached_nodes", "previews"}
    assert doc["status"] == "success" and doc["server"].startswith("http://127.0.0.1:")
    (file,) = doc["files"]
    assert file["node_id"] == "3" and file["filename"].startswith("set-by-cli")
    assert file["type"] == "output"
    path = Path(file["path"])
    assert path.parent == Path(cli.DEFAULT_OUT)
    with Image.open(path) as im:
        assert im.size == (24, 8)
    assert "[3/3] done" in err  # the plain renderer drew on stderr


def test_run_randomize_seeds_changes_the_posted_seed(fake_server: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    wf = str(SAMPLES / "progress.json")
    code, out, err = run_cli(capsys, "run", wf, "--server", fake_server.url, "--json",
                             "--randomize-seeds", "--set", "2.steps=2")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["text"]["3"][0] == "done"  # ProbeText also shows the image's shape
    assert doc["previews"] == 2
    with ComfyApi(fake_server.url) as api:
        entry = api.get_history(doc["prompt_id"])
    assert entry is not None
    assert entry.prompt["2"]["inputs"]["seed"] != 1 and entry.prompt["2"]["inputs"]["steps"] == 2


def test_run_ui_format_workflow(fake_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", str(SAMPLES / "invert_ui.json"),
                             "--server", fake_server.url, "--json",
                             "--set", "Red square.width=10")
    assert code == 0, err
    doc = json.loads(out)
    (file,) = doc["files"]
    assert file["filename"].startswith("inverted")
    from PIL import Image

    with Image.open(file["path"]) as im:
        assert im.size == (10, 64)
        assert im.convert("RGB").getpixel((0, 0)) == (0, 255, 255)  # inverted red


def test_run_failing_prompt_exits_1(fake_server: Any, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                      "color": 0}},
        "2": {"class_type": "ProbeFail", "inputs": {"image": ["1", 0], "message": "boom!"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "x"}},
    })
    code, out, err = run_cli(capsys, "run", wf, "--server", fake_server.url, "--json")
    assert code == cli.EXIT_FAILED
    doc = json.loads(out)
    assert doc["status"] == "error" and doc["error"]["node_id"] == "2"
    assert doc["error"]["node_type"] == "ProbeFail" and "boom!" in doc["error"]["message"]
    assert err.count("\n") == 1 and err.startswith("comfysync: error: prompt")
    assert "boom!" in err and "Traceback" not in err


def test_run_rejected_prompt_exits_1(fake_server: Any, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    code, out, err = run_cli(capsys, "run", wf, "--server", fake_server.url, "--json")
    assert code == cli.EXIT_FAILED
    assert json.loads(out)["status"] == "rejected"
    assert err.startswith("comfysync: error: the server rejected the workflow")
    assert err.count("\n") == 1 and "NoSuchNode" in err


def test_run_set_unknown_input_is_usage_error(fake_server: Any, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    wf = write(tmp_path, INVERT)
    code, out, err = run_cli(capsys, "run", wf, "--server", fake_server.url,
                             "--set", "Canvas.depth=3")
    assert code == cli.EXIT_USAGE
    assert err.startswith("comfysync: error: --set:") and "depth" in err and out == ""


def test_run_timeout_cancels_the_prompt(fake_server: Any, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    slow = json.loads((SAMPLES / "slow.json").read_text(encoding="utf-8"))
    slow["2"]["inputs"]["seed"] = 99  # not cached from another test
    code, out, err = run_cli(capsys, "run", write(tmp_path, slow), "--server",
                             fake_server.url, "--timeout", "0.5", "--json")
    assert code == cli.EXIT_FAILED
    doc = json.loads(out)
    assert doc["status"] == "timeout" and "cancel" in err
    with ComfyApi(fake_server.url) as api:
        assert api.get_queue().remaining == 0  # cancelled, not left running


def test_queue_history_stats(fake_server: Any, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    server = ["--server", fake_server.url]
    code, out, _ = run_cli(capsys, "queue", *server)
    assert (code, out) == (0, "the queue is empty\n")
    code, out, _ = run_cli(capsys, "queue", "--json", *server)
    assert json.loads(out) == {"running": [], "pending": []}

    code, out, _ = run_cli(capsys, "history", *server)
    assert (code, out) == (0, "the history is empty\n")
    assert run_cli(capsys, "run", write(tmp_path, INVERT), *server, "--json")[0] == 0
    code, out, _ = run_cli(capsys, "history", "--max", "1", "--json", *server)
    (entry,) = json.loads(out)
    assert entry["status"] == "success" and entry["files"][0]["node_id"] == "3"
    code, out, _ = run_cli(capsys, "history", *server)
    assert code == 0 and entry["prompt_id"] in out and "1 file" in out

    code, out, _ = run_cli(capsys, "stats", *server)
    assert code == 0 and out.startswith("ComfyUI ") and "RAM:" in out
    code, out, _ = run_cli(capsys, "stats", "--json", *server)
    assert "system" in json.loads(out)


def test_nodes(fake_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server = ["--server", fake_server.url]
    code, out, _ = run_cli(capsys, "nodes", *server)
    assert code == 0 and any(line.startswith("KSampler ") for line in out.splitlines())
    code, out, _ = run_cli(capsys, "nodes", "EmptyImage", *server)
    assert code == 0 and "width: INT (default=512" in out and "outputs: IMAGE" in out
    code, out, _ = run_cli(capsys, "nodes", "SaveImage", "--json", *server)
    assert json.loads(out)["output_node"] is True
    code, out, err = run_cli(capsys, "nodes", "Nope", *server)
    assert code == cli.EXIT_USAGE and "no node class 'Nope'" in err


def _slow(seed: int) -> Dict[str, Any]:
    slow: Dict[str, Any] = json.loads((SAMPLES / "slow.json").read_text(encoding="utf-8"))
    slow["2"]["inputs"]["seed"] = seed  # never cached; ProbeSleep wakes on interrupt
    return slow


def test_interrupt_says_what_happened(fake_server: Any, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    server = ["--server", fake_server.url]
    code, out, _ = run_cli(capsys, "interrupt", *server)
    assert (code, out) == (0, "nothing is running: nothing to interrupt\n")
    code, out, _ = run_cli(capsys, "interrupt", "abc", "--json", *server)
    assert code == 0 and json.loads(out) == {"interrupted": None, "status": "unknown",
                                             "prompt_id": "abc"}
    code, out, _ = run_cli(capsys, "interrupt", "abc", *server)
    assert code == 0 and out == ("prompt abc is neither running nor queued on this server: "
                                 "nothing was interrupted\n")

    with ComfyApi(fake_server.url) as api:
        first = api.submit(_slow(101))
        second = api.submit(_slow(102))
        fake_server.wait_for_running(first.prompt_id)
        code, out, _ = run_cli(capsys, "interrupt", second.prompt_id, *server)
        assert code == 0 and out.startswith(f"prompt {second.prompt_id} is pending, not "
                                            "running: nothing was interrupted")
        assert f'{{"delete": ["{second.prompt_id}"]}}' in out
        code, out, _ = run_cli(capsys, "interrupt", "--json", *server)  # the running one
        assert code == 0 and json.loads(out) == {
            "interrupted": first.prompt_id, "status": "interrupted", "prompt_id": None}
        with pytest.raises(errors.PromptInterruptedError):
            first.wait(timeout=10)

        fake_server.wait_for_running(second.prompt_id)  # by id, when it is the running one
        code, out, _ = run_cli(capsys, "interrupt", second.prompt_id, *server)
        assert (code, out) == (0, f"interrupt sent for the running prompt {second.prompt_id}\n")
        with pytest.raises(errors.PromptInterruptedError):
            second.wait(timeout=10)
    code, out, _ = run_cli(capsys, "interrupt", first.prompt_id, *server)
    assert out == f"prompt {first.prompt_id} has already finished: nothing was interrupted\n"


def test_upload_and_download(fake_server: Any, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    server = ["--server", fake_server.url]
    src = tmp_path / "photo.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(src)
    code, out, _ = run_cli(capsys, "upload", str(src), "--subfolder", "refs", "--json",
                           *server)
    assert code == 0 and json.loads(out) == {"name": "photo.png", "subfolder": "refs",
                                             "type": "input"}
    code, out, _ = run_cli(capsys, "upload", str(src), "--subfolder", "refs", *server)
    assert out == "uploaded photo.png as refs/photo.png (input)\n"  # same content: reused

    mask = tmp_path / "mask.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 128)).save(mask)
    code, out, _ = run_cli(capsys, "upload", str(mask), "--mask", "--original-ref",
                           "refs/photo.png", "--original-type", "input", "--json", *server)
    assert code == 0 and json.loads(out)["name"] == "mask.png"

    code, out, _ = run_cli(capsys, "download", "photo.png", "--subfolder", "refs", "--type",
                           "input", "--out", "dl", *server)
    assert code == 0 and out == f"saved {Path('dl') / 'photo.png'}\n"
    assert (tmp_path / "dl" / "photo.png").read_bytes() == src.read_bytes()
    code, out, _ = run_cli(capsys, "download", "photo.png", "--subfolder", "refs", "--type",
                           "input", "--out", "dl", "--json", *server)
    assert json.loads(out)["path"] == str(Path("dl") / "photo-1.png")  # no overwrite

    code, _, err = run_cli(capsys, "download", "missing.png", *server)
    assert code == cli.EXIT_FAILED and "404" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "upload", str(tmp_path / "nope.png"), *server)
    assert code == cli.EXIT_USAGE
    code, _, err = run_cli(capsys, "upload", str(mask), "--mask", *server)
    assert code == cli.EXIT_USAGE and "--original-ref" in err


def test_demo_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "demo", "--json", "--out", "demo-out")
    assert code == 0, err
    doc = json.loads(out)
    (file,) = doc["files"]
    assert Path(file["path"]).is_file() and Path(file["path"]).parent == Path("demo-out")
    assert doc["previews"] > 0
    assert "embedded FakeComfyUI" in err



def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run_cli(capsys, "queue", "--server", f"127.0.0.1:{port}")
    assert code == cli.EXIT_CONNECT and "Traceback" not in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "--debug", "queue", "--server", f"127.0.0.1:{port}")
    assert code == cli.EXIT_CONNECT and "Traceback (most recent call last)" in err
    assert err.rstrip("\n").splitlines()[-1].startswith("comfysync: error: cannot connect")


@pytest.mark.parametrize("out", ["taken", "taken/sub"])
def test_run_unusable_out_is_a_usage_error_before_submitting(
    fake_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str,
) -> None:
    (tmp_path / "taken").write_text("a file, not a directory", encoding="utf-8")
    wf = write(tmp_path, INVERT)
    code, stdout, err = run_cli(capsys, "run", wf, "--server", fake_server.url, "--out", out)
    assert code == cli.EXIT_USAGE and stdout == ""
    assert err.count("\n") == 1 and err.startswith(f"comfysync: error: --out {out}: ")
    assert "not a directory" in err
    assert not any(r.path == "/prompt" and r.method == "POST" for r in fake_server.requests)
    assert fake_server.history() == {}


def test_run_out_is_created_before_submitting(
    fake_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from comfysync.cli import _run as _cli_run

    seen = []
    real_submit = ComfyApi.submit

    def submit(self: ComfyApi, *args: Any, **kwargs: Any) -> Any:
        seen.append((tmp_path / "new" / "dir").is_dir())
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(ComfyApi, "submit", submit)
    assert _cli_run.prepare_out_dir("new/dir") == Path("new/dir")
    (tmp_path / "new" / "dir").rmdir()
    code, _, err = run_cli(capsys, "run", write(tmp_path, INVERT), "--server", fake_server.url,
                           "--out", "new/dir")
    assert code == 0, err
    assert seen == [True] and len(list((tmp_path / "new" / "dir").iterdir())) == 1


@pytest.mark.parametrize("as_json", [False, True])
def test_run_save_failure_still_reports_the_prompt(
    fake_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, as_json: bool,
) -> None:
    import errno

    from comfysync._results import OutputFile

    def full_disk(self: OutputFile, dest: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    monkeypatch.setattr(OutputFile, "save", full_disk)
    argv = ["run", write(tmp_path, INVERT), "--server", fake_server.url, "--out", "o"]
    code, out, err = run_cli(capsys, *argv, *(["--json"] if as_json else []))
    assert code == cli.EXIT_FAILED
    (prompt_id,) = fake_server.history()
    assert err.count("\n") == 1 and prompt_id in err and "No space left on device" in err
    assert "saving its outputs" in err
    if as_json:
        doc = json.loads(out)
        assert doc["prompt_id"] == prompt_id and doc["status"] == "save_failed"
        assert doc["files"] == [] and "No space left on device" in doc["error"]["message"]
        assert doc["error"]["type"] == "OSError"
    else:
        assert out.startswith(f"prompt {prompt_id} succeeded")


def test_demo_unusable_out_is_a_usage_error_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "taken").write_text("x", encoding="utf-8")
    code, out, err = run_cli(capsys, "demo", "--out", "taken")
    assert code == cli.EXIT_USAGE and out == ""
    assert err == "comfysync: error: --out taken: is a file, not a directory\n"


@pytest.fixture(autouse=True)
def _isolated(isolated_cli: None) -> None:
    """Every test of this module runs with the ``isolated_cli`` fixture (tests/conftest.py)."""
