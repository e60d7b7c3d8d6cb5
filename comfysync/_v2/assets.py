"""Input files on a v2 deployment: hashed with blake3, uploaded only when the bytes are new.

A v2 deployment keys stored bytes by their blake3 hash, so an input is sent at most once:
:class:`AssetUploader` hashes the file locally, asks whether the deployment has those bytes
(``HEAD …/by-hash``), mints a reference to them when it does (``POST …/from-hash``, no bytes
sent), and uploads only otherwise. Hashes already resolved by this client are remembered, so a
script that uploads the same image for every job probes once.

blake3 is an optional dependency (``pip install "comfysync[v2]"``), imported the first time an
input is hashed, never on import of comfysync.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
import threading
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

from attrs import define

from .._rest.models import FileRef
from .models import V2Asset
from .wire import V2Wire

__all__ = ["AssetRef", "AssetUploader", "blake3_hasher"]

log = logging.getLogger("comfysync.v2")

_CHUNK = 1 << 20


def blake3_hasher() -> Callable[[], Any]:
    """The ``blake3`` constructor; an ``ImportError`` that says how to install it."""
    try:
        from blake3 import blake3
    except ImportError:
        raise ImportError(
            'uploading inputs to a Comfy API v2 deployment needs blake3: pip install '
            '"comfysync[v2]"'
        ) from None
    return blake3


def _digest(stream: IO[bytes]) -> str:
    hasher = blake3_hasher()()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        hasher.update(chunk)
    return "blake3:" + str(hasher.hexdigest())


def _source(file: Any, filename: Optional[str]) -> Tuple[str, Callable[[], IO[bytes]]]:
    """``(name, opener)`` for a path, bytes or a seekable binary file object."""
    if isinstance(file, (str, os.PathLike)):
        path = Path(os.fspath(file))
        if not path.is_file():
            raise FileNotFoundError(f"no such file to upload: {path}")
        return filename or path.name, lambda: path.open("rb")
    if isinstance(file, (bytes, bytearray, memoryview)):
        if not filename:
            raise ValueError("filename= is required when uploading bytes (e.g. 'input.png')")
        data = bytes(file)
        return filename, lambda: io.BytesIO(data)
    if callable(getattr(file, "read", None)):
        name = filename or os.path.basename(str(getattr(file, "name", "") or ""))
        if not name:
            raise ValueError("filename= is required for a file object without a name")
        data = bytes(file.read())  # read once: the hash and the upload see the same bytes
        return name, lambda: io.BytesIO(data)
    raise TypeError(
        f"cannot upload a {type(file).__name__}: pass a path, bytes or a binary file object"
    )


@define(frozen=True)
class AssetRef(FileRef):
    """What ``upload_image`` returns on a v2 deployment: the file reference (its ``filename``
    is the path the asset was stored under) plus the asset's id and hash. Set a workflow's
    image input to :meth:`reference` (the deployment's ``core/ASSET`` object; works on every
    v2 deployment) or to ``filename`` (where the deployment resolves input names, as
    comfy-api-proxy does)."""

    asset_id: str = ""
    hash: Optional[str] = None

    def reference(self) -> Dict[str, Any]:
        """The ``core/ASSET`` object a workflow input holds in place of a file name."""
        info: Dict[str, Any] = {"id": self.asset_id, "file_path": self.filename}
        if self.hash:
            info["hash"] = self.hash
        return {"__type": "core/ASSET", "info": info}


class AssetUploader:
    """Uploads of one client: probe by hash, mint from hash, else upload (thread-safe)."""

    def __init__(self, wire: V2Wire) -> None:
        self._wire = wire
        self._lock = threading.Lock()
        self._known: Dict[Tuple[str, str], V2Asset] = {}

    def upload(
        self, file: Any, *, filename: Optional[str] = None, subfolder: str = "",
        content_type: Optional[str] = None,
    ) -> V2Asset:
        """The asset holding ``file``'s bytes under ``[subfolder/]filename``; bytes are sent
        only when the deployment has none with the same hash."""
        name, opener = _source(file, filename)
        file_path = f"{subfolder.strip('/')}/{name}" if subfolder.strip("/") else name
        with opener() as stream:
            digest = _digest(stream)
        with self._lock:
            known = self._known.get((digest, file_path))
        if known is not None:
            return known
        asset: Optional[V2Asset] = None
        if self._wire.has_hash(digest):
            asset = self._wire.asset_from_hash(digest, file_path)
        if asset is None:
            kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            with opener() as stream:
                asset = self._wire.upload_asset(stream, file_path, kind, digest,
                                                str(uuid.uuid4()))
            log.debug("uploaded %s as asset %s", file_path, asset.id)
        else:
            log.debug("the deployment has the bytes of %s already: asset %s", file_path,
                      asset.id)
        with self._lock:
            self._known[(digest, file_path)] = asset
        return asset

    def upload_ref(self, file: Any, *, filename: Optional[str] = None,
                   subfolder: str = "") -> AssetRef:
        """:meth:`upload` as the :class:`AssetRef` ``upload_image`` returns."""
        asset = self.upload(file, filename=filename, subfolder=subfolder)
        name = asset.file_path or (filename or "")
        return AssetRef(filename=name, subfolder="", type="input", asset_id=asset.id,
                        hash=asset.hash)
