"""Saving server files to disk safely.

File names in ComfyUI answers come from the server (and, through custom nodes or a hostile
server, from anyone). Two rules keep a download inside the directory the user chose:

* only the *basename* of the server's name is used (``../../x`` → ``x``, ``/etc/passwd`` →
  ``passwd``, ``a\\..\\b`` → ``b``); names that have no usable basename (``""``, ``.``,
  ``..``, NUL bytes) are refused;
* the final path is resolved and checked to be directly inside the resolved directory, so a
  symlink planted in the directory cannot redirect the write.

Writes go to a temporary file in the same directory, renamed into place at the end, so a
failed or interrupted download never leaves a truncated file under the final name.

Saving *into a directory* never replaces a file: when the name is taken, ``-1``, ``-2``… go
before the extension (``img.png`` → ``img-1.png``). The name is claimed by creating it
exclusively (``O_EXCL``) just before the finished temporary file is renamed onto it, so two
downloads racing for one name — two threads, two processes — still get two files. A
destination that is an exact file path is written as named (replacing it). This is the one
rule for ``OutputFile.save``, ``PromptResult.save_all``, ``ComfyApi.download`` and the CLI.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Tuple, Union

from attrs import define

from ..errors import UnsafePathError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SaveTarget",
    "claim_free_name",
    "safe_basename",
    "safe_join",
    "save_target",
    "stream_to_path",
]

DEFAULT_CHUNK_SIZE = 256 * 1024
"""Bytes per chunk when streaming a download: small enough for constant memory, large
enough that a 7 MB PNG takes a few dozen writes."""

_DRIVE = re.compile(r"^[A-Za-z]:")

PathArg = Union[str, "os.PathLike[str]"]

_MAX_SUFFIX = 100_000
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


@define(frozen=True)
class SaveTarget:
    """Where a download goes: ``path`` the file wanted; ``exact`` true when ``path`` is the
    caller's own file path (written as named), false when it is ``directory / server
    basename`` (a free name next to it is taken when that one exists)."""

    path: Path
    exact: bool


def safe_basename(server_filename: str) -> str:
    """The last component of ``server_filename`` (``/`` and ``\\`` both separate), without a
    Windows drive prefix. Raises :class:`UnsafePathError` when nothing usable remains."""
    if not isinstance(server_filename, str):
        raise UnsafePathError(
            f"server file name must be a string, got {type(server_filename).__name__}",
            filename=repr(server_filename),
            directory="",
        )
    if "\x00" in server_filename:
        raise UnsafePathError(
            f"refusing server file name {server_filename!r}: it contains a NUL byte",
            filename=server_filename,
            directory="",
        )
    name = server_filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _DRIVE.sub("", name)
    if name.strip() in ("", ".", ".."):
        raise UnsafePathError(
            f"refusing server file name {server_filename!r}: no usable file name in it",
            filename=server_filename,
            directory="",
        )
    return name


def safe_join(directory: PathArg, server_filename: str) -> Path:
    """``directory / basename(server_filename)`` (see :func:`safe_basename`), guaranteed to
    lie directly inside ``directory`` (resolved, symlinks followed). Raises
    :class:`UnsafePathError` otherwise."""
    base = Path(directory).expanduser().resolve()
    try:
        name = safe_basename(server_filename)
    except UnsafePathError as exc:
        raise UnsafePathError(str(exc), filename=exc.filename, directory=str(base)) from None
    target = base / name
    resolved = target.resolve()
    if resolved.parent != base:
        raise UnsafePathError(
            f"refusing to write {server_filename!r}: {target} resolves to {resolved}, "
            f"outside {base}",
            filename=server_filename,
            directory=str(base),
        )
    return target


def _chunks(source: object, chunk_size: int) -> Iterator[bytes]:
    iter_content = getattr(source, "iter_content", None)
    if callable(iter_content):
        chunks: Iterable[bytes] = iter_content(chunk_size=chunk_size)
    else:
        chunks = source  # type: ignore[assignment]
    for chunk in chunks:
        if chunk:
            yield bytes(chunk)


def stream_to_path(
    source: Union[Iterable[bytes], object],
    path: Union[SaveTarget, PathArg],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Path:
    """Write ``source`` to ``path`` in chunks of ``chunk_size`` bytes; return the path
    written.

    ``source`` is a ``requests.Response`` opened with ``stream=True`` (read with
    ``iter_content``; closed at the end) or any iterable of ``bytes``. ``path`` is a file path
    (written as named) or a :class:`SaveTarget` (into a directory: a taken name gets
    ``-1``, ``-2``…, see :func:`claim_free_name`). The data goes to a temporary file next to
    the target that takes its place only once everything was written; on any error the
    temporary file is removed and the error propagates. Parent directories are created.
    When the temporary file cannot be created, the ``OSError`` (of the ``errno``'s subclass)
    names the target and the reason, never the temporary name.
    """
    wanted = path if isinstance(path, SaveTarget) else SaveTarget(Path(path), exact=True)
    target = wanted.path
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would stick to the final file; O_EXCL still refuses to
    # follow or reuse anything already there.
    tmp_name = str(target.parent / f".{target.name[:100]}.{uuid.uuid4().hex[:12]}.part")
    try:
        fd = os.open(tmp_name, _OPEN_FLAGS, 0o666)
    except OSError as exc:
        _close(source)
        # The temporary name is ours, not the caller's: name the file they asked for.
        raise OSError(exc.errno, f"{exc.strerror or exc} (cannot create a file in "
                                 f"{target.parent})", str(target)) from None
    claimed = None
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in _chunks(source, chunk_size):
                fh.write(chunk)
        if not wanted.exact:
            claimed = target = claim_free_name(target.parent, target.name)
        os.replace(tmp_name, target)
    except BaseException:
        for leftover in (tmp_name, claimed):
            if leftover is not None:
                try:
                    os.unlink(leftover)
                except OSError:
                    pass
        raise
    finally:
        _close(source)
    return target


def claim_free_name(directory: Path, name: str) -> Path:
    """Create an empty file ``directory / name`` — or, when that name is taken (by anything:
    file, directory, symlink), ``stem-1.suffix``, ``stem-2.suffix``… — exclusively, and
    return its path. ``name`` is a basename (no separator), so the file is created directly
    in ``directory``; ``O_EXCL`` never follows a symlink planted under the name."""
    stem, suffix = _split_name(name)
    for n in range(_MAX_SUFFIX):
        candidate = directory / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            os.close(os.open(candidate, _OPEN_FLAGS, 0o666))
        except FileExistsError:
            continue
        except IsADirectoryError:  # Windows says so for an existing directory
            continue
        except PermissionError:
            if candidate.exists():  # Windows: a directory of that name
                continue
            raise
        return candidate
    raise OSError(errno.EEXIST, f"no free name for {name!r} (tried {name!r} up to "
                                f"-{_MAX_SUFFIX - 1})", str(directory / name))


def _split_name(name: str) -> Tuple[str, str]:
    """``("img", ".png")`` for ``img.png``; a leading dot is part of the stem (``.env``)."""
    suffix = Path(name).suffix
    if not suffix or suffix == name:
        return name, ""
    return name[: -len(suffix)], suffix


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()


def save_target(dest: PathArg, server_filename: str) -> SaveTarget:
    """Where a download of ``server_filename`` into ``dest`` is written — one rule for
    ``OutputFile.save``, ``PromptResult.save_all``, ``ComfyApi.download`` and the CLI.

    ``dest`` names a **directory** when it exists as one, ends with a path separator, or has
    no file suffix (``"out"``, ``"out/"``, ``"~/renders"``): it is created (parents too) and
    the file keeps the basename of its server name, which can never lead outside it
    (:class:`~comfysync.errors.UnsafePathError` before anything is created); when that name
    is taken, :func:`stream_to_path` picks ``name-1.ext``, ``name-2.ext``…. A ``dest`` with a
    suffix (``"out/cat.png"``) is the exact file path (its parent is created), written as
    named."""
    text = os.fspath(dest)
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)) or not path.suffix:
        name = _checked_name(path, server_filename)  # refuse before creating anything
        path.mkdir(parents=True, exist_ok=True)
        return SaveTarget(path / name, exact=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SaveTarget(path, exact=True)


def _checked_name(directory: Path, server_filename: str) -> str:
    try:
        return safe_basename(server_filename)
    except UnsafePathError as exc:
        raise UnsafePathError(str(exc), filename=exc.filename,
                              directory=str(directory.resolve())) from None
