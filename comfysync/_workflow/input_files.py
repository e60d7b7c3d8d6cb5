"""Local files given as workflow input values: :class:`InputFile`.

A node input that names an input file on the server (``LoadImage``'s ``image``, say) may be
given the file itself — a :class:`pathlib.Path` (any ``os.PathLike``) or ``bytes`` — instead
of the name of a file uploaded before. The workflow's one copy (see
:func:`~comfysync._workflow.format.api_copy`) keeps such a value as an :class:`InputFile`,
which is never posted: the client uploads it to the server it submits to and puts that
server's reference in its place (:func:`with_uploads`), right before the submit. Anything
else that is not JSON is still refused, and so is a file anywhere but as an input's value.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from attrs import define, field

__all__ = ["InputFile", "content_name", "input_file", "input_files", "with_uploads"]

#: Leading bytes of common input kinds → the extension a server's loader recognises.
_SIGNATURES: Tuple[Tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", ".png"),
    (0, b"\xff\xd8\xff", ".jpg"),
    (0, b"GIF8", ".gif"),
    (8, b"WEBP", ".webp"),
    (8, b"WAVE", ".wav"),
    (0, b"fLaC", ".flac"),
    (0, b"OggS", ".ogg"),
    (0, b"ID3", ".mp3"),
    (4, b"ftyp", ".mp4"),
)


def content_name(data: bytes) -> str:
    """The file name bytes are uploaded under: their content hash (the same bytes always get
    the same name, so a server that keeps uploads by name stores them once) and an extension
    guessed from their first bytes (``.bin`` when unknown)."""
    ext = next((e for at, magic, e in _SIGNATURES if data[at:at + len(magic)] == magic), ".bin")
    return f"comfysync-{hashlib.sha256(data).hexdigest()[:20]}{ext}"


@define(frozen=True)
class InputFile:
    """A local file given as a node input's value, to be uploaded before the prompt is
    posted: ``source`` is its path or its bytes, ``name`` the file name it is uploaded
    under (the path's own name; for bytes, :func:`content_name`)."""

    source: Union[Path, bytes] = field(repr=False)
    name: str

    def __repr__(self) -> str:
        if isinstance(self.source, Path):
            return f"InputFile({str(self.source)!r})"
        return f"InputFile({len(self.source)} bytes as {self.name!r})"


def input_file(value: Any) -> Optional[InputFile]:
    """``value`` as an :class:`InputFile` when it is a path or bytes, else None."""
    if isinstance(value, os.PathLike):
        path = Path(os.fspath(value))
        return InputFile(path, path.name)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return InputFile(data, content_name(data))
    return None


def input_files(prompt: Mapping[str, Any]) -> List[Tuple[str, str, InputFile]]:
    """``(node id, input name, file)`` of every :class:`InputFile` in an API prompt."""
    found: List[Tuple[str, str, InputFile]] = []
    for node_id, entry in prompt.items():
        inputs = entry.get("inputs") if isinstance(entry, Mapping) else None
        if isinstance(inputs, Mapping):
            found.extend((node_id, name, value) for name, value in inputs.items()
                         if isinstance(value, InputFile))
    return found


def with_uploads(
    prompt: Dict[str, Any], upload: Callable[[InputFile], Any]
) -> Dict[str, Any]:
    """``prompt`` with each :class:`InputFile` replaced by ``upload(file)`` (the server's
    reference to it; one upload per distinct file). ``prompt`` itself is left as it is — it
    may be submitted again, to another server — and returned unchanged when it holds no
    file."""
    files = input_files(prompt)
    if not files:
        return prompt
    refs: Dict[InputFile, Any] = {}
    copied = {node_id: dict(entry) for node_id, entry in prompt.items()}
    for node_id, name, file in files:
        if file not in refs:
            refs[file] = upload(file)
        inputs = dict(copied[node_id]["inputs"])
        inputs[name] = refs[file]
        copied[node_id]["inputs"] = inputs
    return copied
