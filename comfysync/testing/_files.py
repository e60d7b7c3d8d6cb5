"""Path rules of FakeComfyUI's file routes (``/view``, ``/upload/*``, ``/userdata``).

ComfyUI confines every client-supplied name to one of its directories with a few specific
checks whose *outcomes* clients depend on (400 for ``..``, 403 for a subfolder escape, 404 for
a missing file, " (1)" renaming on upload, same-content reuse). They live here, free of HTTP,
so the routes stay thin and the rules are testable on their own.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union
from urllib.parse import unquote

from attrs import define

_ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}


@define(frozen=True)
class Workdirs:
    """The fake server's folders (created by :func:`make_workdirs`)."""

    root: Path
    input: Path
    output: Path
    temp: Path
    user: Path
    models: Path

    def by_type(self, dir_type: Optional[str]) -> Optional[Path]:
        """The directory of ``input``/``output``/``temp``; None for anything else."""
        if dir_type == "input":
            return self.input
        if dir_type == "output":
            return self.output
        if dir_type == "temp":
            return self.temp
        return None


def make_workdirs(root: Path) -> Workdirs:
    """Create (if needed) and return the folder layout below ``root``."""
    root = root.resolve()
    dirs = Workdirs(
        root=root,
        input=root / "input",
        output=root / "output",
        temp=root / "temp",
        user=root / "user",
        models=root / "models",
    )
    for path in (dirs.input, dirs.output, dirs.temp, dirs.user, dirs.models):
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def split_annotation(name: str) -> Tuple[str, Optional[str]]:
    """``"a.png [input]"`` → ``("a.png", "input")``; unannotated names → ``(name, None)``."""
    for suffix, dir_type in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -(len(suffix) + 1)], dir_type
    return name, None


def _inside(child: str, parent: str) -> bool:
    try:
        return os.path.commonpath((child, parent)) == parent
    except ValueError:  # different drives on Windows
        return False


@define(frozen=True)
class ViewLookup:
    """Outcome of resolving a ``/view``-style reference: ``status`` 200 with ``path``, or an
    HTTP error status (400, 403, 404)."""

    status: int
    path: Optional[Path] = None


def resolve_view(
    dirs: Workdirs, filename: str, dir_type: Optional[str], subfolder: Optional[str]
) -> ViewLookup:
    """Apply ``/view``'s checks in the server's order."""
    name, annotated = split_annotation(filename)
    if not name:
        return ViewLookup(400)
    if name[0] == "/" or ".." in name:
        return ViewLookup(400)
    base = dirs.by_type(annotated or (dir_type if dir_type is not None else "output"))
    if base is None:
        return ViewLookup(400)
    root = str(base)
    if subfolder is not None:
        full = os.path.join(root, subfolder)
        if not _inside(os.path.abspath(full), root):
            return ViewLookup(403)
        root = full
    path = Path(root) / os.path.basename(name)
    if not path.is_file():
        return ViewLookup(404)
    return ViewLookup(200, path)


def resolve_mask_original(dirs: Workdirs, ref: Mapping[str, object]) -> Optional[Path]:
    """The image a mask applies to (``original_ref`` of ``/upload/mask``), or None when the
    reference is invalid or missing — the server then silently writes nothing."""
    name, annotated = split_annotation(str(ref.get("filename", "")))
    if not name or name[0] == "/" or ".." in name:
        return None
    base = dirs.by_type(annotated or str(ref.get("type", "output")))
    if base is None:
        return None
    root = str(base)
    subfolder = ref.get("subfolder", "")
    if subfolder not in ("", None):
        full = os.path.join(root, str(subfolder))
        if not _inside(os.path.abspath(full), root):
            return None
        root = full
    path = Path(root) / name
    return path if path.is_file() else None


def _sha256(data: Union[bytes, Path]) -> str:
    if isinstance(data, Path):
        data = data.read_bytes()
    return hashlib.sha256(data).hexdigest()


@define(frozen=True)
class UploadTarget:
    """Where an upload goes: ``name`` (possibly renamed), its ``path``, and whether an
    identical file already exists there (then nothing is written)."""

    name: str
    path: Path
    duplicate: bool


def upload_target(
    base: Path, subfolder: str, filename: str, content: bytes, overwrite: bool
) -> Optional[UploadTarget]:
    """Pick the target of an upload: None when it would escape ``base``; otherwise the
    first of ``name.ext``, ``name (1).ext``, … that is free or holds identical content."""
    root = str(base)
    folder = os.path.join(root, os.path.normpath(subfolder))
    path = os.path.abspath(os.path.join(folder, filename))
    if not _inside(path, root):
        return None
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(filename)
    name = filename
    duplicate = False
    if not overwrite:
        digest = _sha256(content)
        counter = 1
        while os.path.exists(path):
            if os.path.isfile(path) and _sha256(Path(path)) == digest:
                duplicate = True
                break
            name = f"{stem} ({counter}){ext}"
            path = os.path.join(folder, name)
            counter += 1
    return UploadTarget(name=name, path=Path(path), duplicate=duplicate)


def user_path(user_root: Path, file: Optional[str]) -> Optional[Path]:
    """A path inside the user's directory: ``file`` is decoded once more when it still
    contains ``%``; None when it would leave the user root."""
    root = os.path.abspath(str(user_root))
    if file is None:
        return Path(root)
    if "%" in file:
        file = unquote(file)
    path = os.path.abspath(os.path.join(root, file))
    if not _inside(path, root):
        return None
    return Path(path)


def file_info(path: Path, relative_to: Path) -> Dict[str, object]:
    """``{"path", "size", "modified", "created"}`` as the userdata routes report it."""
    stat = path.stat()
    return {
        "path": os.path.relpath(path, relative_to).replace(os.sep, "/"),
        "size": stat.st_size,
        "modified": stat.st_mtime,
        "created": stat.st_ctime,
    }
