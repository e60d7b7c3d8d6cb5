"""PromptResult / OutputFile built from history entries and live outputs (no server)."""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from comfysync._rest.models import HistoryEntry
from comfysync._rest.saving import save_target, stream_to_path
from comfysync._results import OutputFile, build_result
from comfysync.errors import UnsafePathError


class FakeFiles:
    """FileClient serving fixed bytes; saves through the real save_target/stream_to_path."""

    def __init__(self, data: Dict[str, bytes]) -> None:
        self.data = data
        self.reads: List[str] = []

    def get_image(self, ref: Any) -> bytes:
        self.reads.append(ref.filename)
        return self.data[ref.filename]

    def download(self, ref: Any, dest: Any) -> Path:
        return stream_to_path([self.data[ref.filename]], save_target(dest, ref.filename))

    def get_path_image(self, ref: Any) -> str:
        return f"http://h/view?filename={ref.filename}&type={ref.type}"


def png_bytes(color: str = "red") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, format="PNG")
    return buf.getvalue()


VARIETY = {
    "2": {"images": [{"filename": "big_00001_.png", "subfolder": "sdk", "type": "output"},
                     {"filename": "big_00002_.png", "subfolder": "sdk", "type": "output"}]},
    "3": {"images": [{"filename": "tmp_00001_.png", "subfolder": "", "type": "temp"}]},
    "4": {"images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}],
          "animated": [True]},
    "5": {"gifs": [{"filename": "clip_00001.mp4", "subfolder": "", "type": "output",
                    "format": "video/h264-mp4", "frame_rate": 8.0}]},
    "6": {"audio": [{"filename": "song.flac", "subfolder": "audio", "type": "output"}]},
    "7": {"text": ["hello", "world"]},
    "8": {"custom": [{"filename": "data.bin", "type": "output"}], "numbers": [1, 2]},
}


def history(outputs: Dict[str, Any], start: int = 1_700_000_000_000,
            end: int = 1_700_000_002_500) -> HistoryEntry:
    return HistoryEntry.from_wire("p", {
        "prompt": [1, "p", {}, {}, []],
        "outputs": outputs,
        "status": {"status_str": "success", "completed": True, "messages": [
            ["execution_start", {"prompt_id": "p", "timestamp": start}],
            ["execution_cached", {"nodes": ["1"], "prompt_id": "p", "timestamp": start}],
            ["execution_success", {"prompt_id": "p", "timestamp": end}],
        ]},
        "meta": {},
    })


def test_every_output_key_with_file_items_becomes_files() -> None:
    r = build_result("p", history=history(VARIETY), executed={}, client=FakeFiles({}))
    assert [(f.node_id, f.output_key, f.filename) for f in r.files] == [
        ("2", "images", "big_00001_.png"),
        ("2", "images", "big_00002_.png"),
        ("3", "images", "tmp_00001_.png"),
        ("4", "images", "anim_00001_.webp"),
        ("5", "gifs", "clip_00001.mp4"),
        ("6", "audio", "song.flac"),
        ("8", "custom", "data.bin"),
    ]
    assert [f.filename for f in r.images] == [
        "big_00001_.png", "big_00002_.png", "tmp_00001_.png", "anim_00001_.webp"]
    assert r.output_images == r.images
    assert r.text == {"7": ["hello", "world"]}
    assert r.outputs == VARIETY  # as the server sent them
    f = r.files[0]
    assert (f.subfolder, f.type) == ("sdk", "output")
    assert f.url == "http://h/view?filename=big_00001_.png&type=output"
    assert r.files[4].mime_type == "video/mp4" and not r.files[4].is_image
    assert r.files[4].extra == {"format": "video/h264-mp4", "frame_rate": 8.0}
    assert r.files[5].mime_type == "audio/flac"
    assert r.files_of("2") == r.files[:2]


def test_timing_and_cached_nodes_from_history() -> None:
    r = build_result("p", history=history({}), executed={})
    assert r.status == "success"
    assert r.cached_nodes == ("1",)
    assert r.started_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
    assert r.duration == pytest.approx(2.5)
    assert r.finished_at is not None and r.finished_at > r.started_at


def test_live_outputs_merge_with_history_and_null_outputs_are_ignored() -> None:
    live = {"9": {"text": ["live only"]}, "2": {"images": []}, "3": None}
    r = build_result("p", history=history({"2": VARIETY["2"]}), executed=live,
                     cached_nodes=("3",), started_ms=5, finished_ms=10)
    assert list(r.outputs) == ["9", "2"]
    assert r.outputs["2"] == VARIETY["2"]  # history wins
    assert r.text == {"9": ["live only"]}
    assert r.cached_nodes == ("3",)


def test_without_history_timing_comes_from_events() -> None:
    r = build_result("p", history=None, executed={"2": {"text": "single"}},
                     started_ms=1000, finished_ms=1500)
    assert r.text == {"2": ["single"]} and r.raw is None
    assert r.duration == pytest.approx(0.5)
    assert build_result("p", history=None, executed={}).duration is None


def test_read_save_and_pil(tmp_path: Path) -> None:
    data = png_bytes()
    files = FakeFiles({"a.png": data, "b.jpg": b"not really a jpeg"})
    r = build_result("p", history=history({"2": {"images": [
        {"filename": "a.png", "type": "output"}, {"filename": "b.jpg", "type": "temp"}]}}),
        executed={}, client=files)
    a, b = r.images
    assert a.read() == data
    saved = a.save(tmp_path)
    assert saved == tmp_path / "a.png" and saved.read_bytes() == data
    assert a.save(tmp_path / "renamed.png").read_bytes() == data
    assert a.to_pil().size == (4, 3)
    assert a.image.size == (4, 3)
    assert a._repr_png_() == data
    assert b._repr_png_() is None  # undecodable: no display, no exception
    out = tmp_path / "all"
    assert sorted(p.name for p in r.save_all(out)) == ["a.png", "b.jpg"]


def test_hostile_names_never_leave_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    names = ["../../evil.png", "/etc/evil2.png", "..\\..\\evil3.png", "sub/../../evil4.png"]
    files = FakeFiles({n: b"x" for n in names})
    r = build_result("p", history=history({"2": {"images": [
        {"filename": n, "type": "output"} for n in names]}}), executed={}, client=files)
    paths = [f.save(target) for f in r.files]
    assert [p.parent for p in paths] == [target.resolve()] * 4
    assert sorted(p.name for p in target.iterdir()) == ["evil.png", "evil2.png", "evil3.png",
                                                         "evil4.png"]
    assert not (tmp_path / "evil.png").exists()


def test_to_pil_without_pillow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    f = OutputFile("a.png", "", "output", "2", "u", client=FakeFiles({"a.png": b""}))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"comfysync\[pil\]"):
        f.to_pil()


def test_outputfile_is_frozen_and_repr_hides_the_client() -> None:
    f = OutputFile("a.png", "", "output", "2", "u", client=FakeFiles({}))
    with pytest.raises(AttributeError):
        f.filename = "b.png"  # type: ignore[misc]
    assert "FakeFiles" not in repr(f)
    assert f == OutputFile("a.png", "", "output", "2", "u")
    with pytest.raises(RuntimeError):
        OutputFile("a.png", "", "output", "2", "u").read()


def one_file(name: str = "a.png", data: bytes = b"data") -> OutputFile:
    files = FakeFiles({name: data})
    r = build_result("p", history=history({"2": {"images": [{"filename": name}]}}),
                     executed={}, client=files)
    return r.files[0]


def test_save_destination_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory when it exists, ends with a separator or has no suffix (created, file
    keeps its server basename); otherwise the exact file path (parent created)."""
    f = one_file("nested/a.png")
    assert f.save(tmp_path / "out") == tmp_path / "out" / "a.png"  # not a file named "out"
    assert (tmp_path / "out").is_dir()
    assert f.save(str(tmp_path / "deep" / "er.d") + "/") == tmp_path / "deep" / "er.d" / "a.png"
    (tmp_path / "existing.dir").mkdir()
    assert f.save(tmp_path / "existing.dir") == tmp_path / "existing.dir" / "a.png"
    exact = f.save(tmp_path / "new" / "parent" / "picture.png")
    assert exact == tmp_path / "new" / "parent" / "picture.png" and exact.read_bytes() == b"data"
    assert f.save(tmp_path / "result.bin").is_file()
    monkeypatch.chdir(tmp_path)
    assert f.save("relative").resolve() == (tmp_path / "relative" / "a.png").resolve()
    assert f.save("plain.png").resolve() == (tmp_path / "plain.png").resolve()


def test_save_refuses_before_creating_anything(tmp_path: Path) -> None:
    bad = one_file("..")
    with pytest.raises(UnsafePathError):
        bad.save(tmp_path / "never")
    assert not (tmp_path / "never").exists()
    clash = one_file("a.png")
    (tmp_path / "out" / "a.png").mkdir(parents=True)  # a directory where the file would go
    assert clash.save(tmp_path / "out") == (tmp_path / "out" / "a-1.png").resolve()
    hostile = one_file("../../x/evil.png")
    assert hostile.save(tmp_path / "fresh") == tmp_path / "fresh" / "evil.png"
    assert sorted(p.name for p in tmp_path.rglob("evil.png")) == ["evil.png"]


class SubfolderFiles(FakeFiles):
    """Serves by subfolder + filename, like /view."""

    def __init__(self, data: Dict[str, bytes]) -> None:
        super().__init__(data)

    def download(self, ref: Any, dest: Any) -> Path:
        return stream_to_path([self.data[f"{ref.subfolder}/{ref.filename}"]],
                              save_target(dest, ref.filename))


def test_save_all_keeps_files_with_the_same_name_apart(tmp_path: Path) -> None:
    """Two SaveImage nodes with prefixes "a/img" and "b/img" both write img_00001_.png:
    save_all must not let the second overwrite the first."""
    files = SubfolderFiles({"a/img_00001_.png": b"A", "b/img_00001_.png": b"B",
                            "a/IMG_00001_.PNG": b"C"})
    r = build_result("p", history=history({
        "2": {"images": [{"filename": "img_00001_.png", "subfolder": "a"}]},
        "3": {"images": [{"filename": "img_00001_.png", "subfolder": "b"},
                         {"filename": "IMG_00001_.PNG", "subfolder": "a"}]}}),
        executed={}, client=files)
    paths = r.save_all(tmp_path / "all.v2")  # always a directory, suffix or not
    # the file system judges whether a name is taken: IMG_… clashes only where case is folded
    assert [p.name for p in paths][:2] == ["img_00001_.png", "img_00001_-1.png"]
    assert paths[2].name in ("IMG_00001_.PNG", "IMG_00001_-2.PNG")
    assert [p.read_bytes() for p in paths] == [b"A", b"B", b"C"]
    assert all(p.parent == tmp_path / "all.v2" for p in paths)
