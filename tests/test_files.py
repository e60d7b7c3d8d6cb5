"""Confining server file names to a directory, and streamed atomic saving."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator, List

import pytest

from comfysync._rest.saving import safe_basename, safe_join, stream_to_path
from comfysync.errors import ComfyError, UnsafePathError


@pytest.mark.parametrize(
    "name, base",
    [("img.png", "img.png"), ("../../x", "x"), ("/etc/passwd", "passwd"), ("a/../../b", "b"),
     ("sub/dir/pic.webp", "pic.webp"), ("..\\..\\win.ini", "win.ini"), ("C:\\x\\y.png", "y.png"),
     ("D:z.png", "z.png"), ("name with spaces (1).png", "name with spaces (1).png"),
     ("..hidden", "..hidden"), (".env", ".env")],
)
def test_safe_basename(name: str, base: str) -> None:
    assert safe_basename(name) == base


@pytest.mark.parametrize("name", ["", ".", "..", "a/..", "x/.", "/", "C:", " ", "a\x00b", "\\"])
def test_safe_basename_refuses(name: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_basename(name)
    assert isinstance(info.value, ComfyError) and isinstance(info.value, ValueError)
    assert info.value.filename == name


def test_safe_basename_refuses_non_strings() -> None:
    with pytest.raises(UnsafePathError):
        safe_basename(b"x.png")  # type: ignore[arg-type]


@pytest.mark.parametrize("hostile", ["../../x", "/etc/passwd", "a/../../b", "../outside.png"])
def test_safe_join_stays_inside(tmp_path: Path, hostile: str) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    target = safe_join(inner, hostile)
    assert target.parent == inner.resolve()
    assert inner.resolve() in target.resolve().parents


def test_safe_join_refuses_symlink_leading_out(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    outside = tmp_path / "outside.png"
    (inner / "trap.png").symlink_to(outside)
    with pytest.raises(UnsafePathError) as info:
        safe_join(inner, "trap.png")
    assert info.value.directory == str(inner.resolve())
    assert not outside.exists()


def test_safe_join_refusal_names_directory(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_join(tmp_path, "..")
    assert info.value.directory == str(tmp_path.resolve()) and "'..'" in str(info.value)


def test_stream_to_path_from_iterable(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out.bin"
    written = stream_to_path(iter([b"ab", b"", bytearray(b"cd")]), target)
    assert written == target and target.read_bytes() == b"abcd"
    assert os.listdir(target.parent) == ["out.bin"]


def test_stream_to_path_writes_progressively(tmp_path: Path) -> None:
    """Chunks reach the disk as they arrive: nothing accumulates in memory."""
    chunk = b"z" * 100_000
    target = tmp_path / "big.bin"

    def chunks() -> Iterator[bytes]:
        for i in range(20):
            parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
            assert len(parts) == 1 and parts[0].stat().st_size >= (i - 1) * len(chunk)
            yield chunk

    stream_to_path(chunks(), target)
    assert target.stat().st_size == 20 * len(chunk)


class FakeResponse:
    def __init__(self, data: bytes) -> None:
        self.data, self.closed, self.sizes = data, False, []  # type: ignore[var-annotated]

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        self.sizes.append(chunk_size)
        for i in range(0, len(self.data), chunk_size):
            yield self.data[i:i + chunk_size]

    def close(self) -> None:
        self.closed = True


def test_stream_to_path_from_response(tmp_path: Path) -> None:
    response = FakeResponse(bytes(range(256)) * 10)
    stream_to_path(response, tmp_path / "r.bin", chunk_size=100)
    assert (tmp_path / "r.bin").read_bytes() == response.data
    assert response.sizes == [100] and response.closed


def test_failure_mid_stream_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")

    def broken() -> Iterator[bytes]:
        yield b"new-part"
        raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        stream_to_path(broken(), target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_saved_file_mode_follows_umask(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        stream_to_path([b"x"], tmp_path / "m.bin")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o644


def test_overwrites_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "o.bin"
    target.write_bytes(b"first")
    stream_to_path([b"second"], target)
    assert target.read_bytes() == b"second"
    names: List[str] = os.listdir(tmp_path)
    assert names == ["o.bin"]


def test_temp_file_failure_names_the_target_not_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import comfysync._rest.saving as files_module

    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(files_module.os, "open", refuse)
    target = tmp_path / "ComfyUI_00008_.png"
    response = FakeResponse(b"data")
    with pytest.raises(PermissionError) as info:
        stream_to_path(response, target)
    message = str(info.value)
    assert info.value.filename == str(target) and str(target) in message
    assert "Permission denied" in message and ".part" not in message
    assert response.closed  # the body is released even though nothing was written
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_directory_names_the_target() -> None:
    with pytest.raises(OSError) as info:
        stream_to_path([b"x"], "/proc/ComfyUI_00008_.png")
    assert info.value.filename == "/proc/ComfyUI_00008_.png"
    assert ".part" not in str(info.value) and "/proc" in str(info.value)
