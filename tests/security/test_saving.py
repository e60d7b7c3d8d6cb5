"""Saving into a directory never overwrites: a taken name gets ``-1``, ``-2``… (one rule for
``save``, ``save_all``, ``download`` and the CLI), races included; an exact file path is
written as named."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List

import pytest

from comfysync import ComfyApi
from comfysync._rest.saving import SaveTarget, claim_free_name, save_target, stream_to_path
from comfysync.cli import main as cli_main
from comfysync.testing import FakeComfyUI


def put_output(server: FakeComfyUI, name: str, data: bytes, subfolder: str = "") -> None:
    folder = Path(server.dirs.output) / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_free_names_go_before_the_extension(tmp_path: Path) -> None:
    names = [claim_free_name(tmp_path, n).name for n in
             ["a.png", "a.png", "a.png", "noext", "noext", ".env", ".env", "x.tar.gz", "x.tar.gz"]]
    assert names == ["a.png", "a-1.png", "a-2.png", "noext", "noext-1", ".env", ".env-1",
                     "x.tar.gz", "x.tar-1.gz"]


def test_into_a_directory_never_overwrites_but_an_exact_path_does(tmp_path: Path) -> None:
    (tmp_path / "img.png").write_bytes(b"old")
    first = stream_to_path([b"new"], save_target(tmp_path, "img.png"))
    assert first == tmp_path / "img-1.png" and first.read_bytes() == b"new"
    assert (tmp_path / "img.png").read_bytes() == b"old"
    exact = stream_to_path([b"exact"], save_target(tmp_path / "img.png", "ignored.png"))
    assert exact == tmp_path / "img.png" and exact.read_bytes() == b"exact"
    assert sorted(os.listdir(tmp_path)) == ["img-1.png", "img.png"]


def test_a_planted_symlink_is_a_taken_name_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"precious")
    inner = tmp_path / "out"
    inner.mkdir()
    (inner / "a.png").symlink_to(outside)
    written = stream_to_path([b"download"], save_target(inner, "a.png"))
    assert written == inner / "a-1.png" and written.read_bytes() == b"download"
    assert outside.read_bytes() == b"precious"


def test_concurrent_saves_of_one_name_all_survive(tmp_path: Path) -> None:
    """Eight threads save ``race.png`` into one directory at once: eight files, none
    clobbered (the name is claimed exclusively, not checked and then written)."""
    count = 8
    barrier = threading.Barrier(count)
    written: List[Path] = []
    lock = threading.Lock()

    def chunks(i: int) -> List[bytes]:
        barrier.wait(10)
        return [f"payload-{i}".encode()]

    def save(i: int) -> None:
        path = stream_to_path(chunks(i), save_target(tmp_path, "race.png"))
        with lock:
            written.append(path)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(written)) == count
    assert sorted(p.read_bytes() for p in written) == sorted(
        f"payload-{i}".encode() for i in range(count))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


def test_a_failed_save_releases_its_claimed_name(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        stream_to_path([b"x"], SaveTarget(tmp_path / "a.png", exact=False))
    assert os.listdir(tmp_path) == []


def test_download_and_save_into_a_directory_keep_both(fake_server: FakeComfyUI,
                                                      tmp_path: Path) -> None:
    """Two servers (here two subfolders) both produce ComfyUI_00001_.png."""
    put_output(fake_server, "ComfyUI_00001_.png", b"first", "a")
    put_output(fake_server, "ComfyUI_00001_.png", b"second", "b")
    api = ComfyApi(fake_server.url, tracker="http")
    try:
        one = api.download({"filename": "ComfyUI_00001_.png", "subfolder": "a",
                            "type": "output"}, tmp_path)
        two = api.download({"filename": "ComfyUI_00001_.png", "subfolder": "b",
                            "type": "output"}, tmp_path)
        exact = api.download({"filename": "ComfyUI_00001_.png", "subfolder": "b",
                              "type": "output"}, tmp_path / "ComfyUI_00001_.png")
    finally:
        api.close()
    assert (one.name, two.name) == ("ComfyUI_00001_.png", "ComfyUI_00001_-1.png")
    assert exact == tmp_path / "ComfyUI_00001_.png" and exact.read_bytes() == b"second"
    assert two.read_bytes() == b"second"


def test_cli_download_out_file_and_directory(fake_server: FakeComfyUI, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    put_output(fake_server, "pic.png", b"data")
    base = ["download", "pic.png", "--server", fake_server.url]
    assert cli_main(base + ["--out", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").read_bytes() == b"data"  # a file, like save()
    assert not (tmp_path / "x.png" / "pic.png").exists()
    for _ in range(2):
        assert cli_main(base + ["--out", str(tmp_path / "dir")]) == 0
    assert sorted(os.listdir(tmp_path / "dir")) == ["pic-1.png", "pic.png"]
    out = capsys.readouterr().out
    assert str(tmp_path / "dir" / "pic-1.png") in out


def test_save_all_twice_into_one_directory_keeps_both_runs(fake_server: FakeComfyUI,
                                                           tmp_path: Path) -> None:
    wf = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8,
                                                        "batch_size": 2, "color": 0}},
          "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                      "filename_prefix": "twice"}}}
    with ComfyApi(fake_server.url) as api:
        result = api.run_workflow(wf, timeout=30)
    first = result.save_all(tmp_path)
    second = result.save_all(tmp_path)
    assert len(first) == len(second) == 2
    assert len(set(first) | set(second)) == 4
    assert all(p.stem.endswith("-1") for p in second)
