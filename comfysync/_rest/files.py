"""REST routes for files on the server: uploads, ``/view`` downloads, model metadata.

A server file is named by ``filename`` + ``subfolder`` + ``type`` (``input``/``output``/
``temp``); :func:`file_ref` accepts every form users hold one in (a :class:`FileRef`, an output
item dict, an ``OutputFile``, a bare name). Downloads stream to disk through
:mod:`comfysync._rest.saving`, which keeps a server-chosen name inside the target directory
and never overwrites a file there.

Fetching a file is a *download* for the transport: a redirect to another origin (a storage
host, a signed URL) is followed without the client's credentials; every other route refuses
such a redirect. :func:`read_file` and :func:`download_file` are the one implementation,
used by the client's methods and by :class:`FileAccess`, which results hold so that their
files stay readable after the client is closed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, TypeVar, Union

import requests

from .._http.settings import ConnectionSettings
from .._http.transport import HttpTransport, iter_response
from ..errors import ComfyConnectionError, ComfyHTTPError
from .base import RestBase, as_dict, segment
from .models import FileRef
from .saving import DEFAULT_CHUNK_SIZE, save_target, stream_to_path

__all__ = [
    "FileAccess",
    "FileInput",
    "FileRoutes",
    "RefLike",
    "download_file",
    "file_ref",
    "read_file",
    "view_url",
]

T = TypeVar("T")

log = logging.getLogger("comfysync.rest")

FileInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
"""Upload source: a path, raw bytes, or a binary file object opened for reading."""

RefLike = Any
"""A server file: a :class:`FileRef`, an output item dict (``filename``/``subfolder``/``type``),
anything with those attributes (e.g. ``OutputFile``), or a bare filename (type ``output``)."""


def file_ref(ref: RefLike) -> FileRef:
    """``ref`` (see :data:`RefLike`) as a :class:`FileRef`; :class:`TypeError` for anything
    else."""
    if isinstance(ref, FileRef):
        return ref
    if isinstance(ref, str):
        return FileRef(ref)
    if isinstance(ref, Mapping):
        return FileRef.from_wire(ref)
    filename = getattr(ref, "filename", None)
    if isinstance(filename, str):
        return FileRef(
            filename,
            str(getattr(ref, "subfolder", "") or ""),
            str(getattr(ref, "type", "") or "output"),
        )
    raise TypeError(
        "expected a FileRef, an output item dict, an object with filename/subfolder/type, "
        f"or a filename; got {type(ref).__name__}"
    )


def _upload_part(file: FileInput, filename: Optional[str]) -> Tuple[str, Any, Optional[IO[bytes]]]:
    """``(filename, payload, file to close)`` for the multipart ``image`` part."""
    if isinstance(file, (str, os.PathLike)):
        path = Path(os.fspath(file))
        handle = path.open("rb")
        return (filename or path.name, handle, handle)
    if isinstance(file, (bytes, bytearray, memoryview)):
        if not filename:
            raise ValueError("filename= is required when uploading bytes (e.g. 'input.png')")
        return (filename, bytes(file), None)
    if callable(getattr(file, "read", None)):
        name = filename or os.path.basename(str(getattr(file, "name", "") or ""))
        if not name:
            raise ValueError("filename= is required for a file object without a name")
        return (name, file, None)
    raise TypeError(
        f"cannot upload a {type(file).__name__}: pass a path, bytes or a binary file object"
    )


def _view_params(ref: FileRef, **extra: Optional[str]) -> Dict[str, Any]:
    """The ``/view`` query for ``ref``, plus the ``extra`` options that are set."""
    params: Dict[str, Any] = dict(ref.to_wire())
    params.update({k: v for k, v in extra.items() if v is not None})
    return params


def _fetch(transport: HttpTransport, ref: FileRef, params: Mapping[str, Any],
           stream: bool) -> requests.Response:
    """``GET /view`` as a download (foreign redirects followed without credentials); a 404
    says which file the server lacks."""
    try:
        return transport.request("GET", "/view", params=params, stream=stream,
                                 allow_foreign=True)
    except ComfyHTTPError as exc:
        if exc.status != 404:
            raise
        where = f"subfolder {ref.subfolder!r} of " if ref.subfolder else ""
        raise ComfyHTTPError(
            404, exc.url, exc.body, method="GET",
            message=(f"GET {exc.url}: the server has no file {ref.filename!r} in "
                     f"{where}its {ref.type!r} directory (HTTP 404)"),
        ) from None


def read_file(transport: HttpTransport, ref: RefLike, *, preview: Optional[str] = None,
              channel: Optional[str] = None) -> bytes:
    """The bytes of the server file ``ref`` names, in memory (``preview``/``channel`` as for
    :meth:`FileRoutes.get_image`)."""
    server_file = file_ref(ref)
    params = _view_params(server_file, preview=preview, channel=channel)
    return _fetch(transport, server_file, params, stream=False).content


def download_file(transport: HttpTransport, ref: RefLike, dest: Union[str, os.PathLike[str]],
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> Path:
    """Stream the server file ``ref`` names to ``dest`` (the rule of
    :func:`~comfysync._rest.saving.save_target`) and return the path written."""
    server_file = file_ref(ref)
    target = save_target(dest, server_file.filename)
    params = _view_params(server_file)
    response = _fetch(transport, server_file, params, stream=True)
    chunks = iter_response(response, chunk_size=chunk_size, url=transport.url("/view", params))
    try:
        written = stream_to_path(chunks, target, chunk_size)
    finally:  # also when nothing was read (the target cannot be created)
        response.close()
    log.debug("downloaded %s to %s", server_file.filename, written)
    return written


def view_url(transport: HttpTransport, ref: RefLike) -> str:
    """The absolute ``/view`` URL of the file ``ref`` names, without credentials."""
    return transport.url("/view", _view_params(file_ref(ref)))


class FileAccess:
    """How a result reaches its files: through the client's transport while the client is
    open, else through a short-lived transport built from the same
    :class:`~comfysync._http.settings.ConnectionSettings` (URL, credentials, TLS, timeout,
    retries), closed after each call. So ``OutputFile.save()`` works after the ``with``
    block or ``pool.close()``. ``repr`` shows the server address only."""

    def __init__(self, transport: HttpTransport) -> None:
        self._live = transport
        self.settings: ConnectionSettings = transport.settings

    def _call(self, fn: Callable[[HttpTransport], T]) -> T:
        live = self._live
        if not live.closed:
            try:
                return fn(live)
            except ComfyConnectionError:
                if not live.closed:
                    raise
                # the client was closed while this call ran: redo it on our own connection
        with self._own_transport() as transport:
            return fn(transport)

    @contextlib.contextmanager
    def _own_transport(self) -> Iterator[HttpTransport]:
        transport = HttpTransport.from_settings(self.settings)
        try:
            yield transport
        finally:
            transport.close()

    def get_image(self, ref: RefLike) -> bytes:
        """The file's bytes (``GET /view``)."""
        return self._call(lambda t: read_file(t, ref))

    def download(self, ref: RefLike, dest: Union[str, os.PathLike[str]]) -> Path:
        """Stream the file to ``dest`` (the saving rule of :func:`download_file`)."""
        return self._call(lambda t: download_file(t, ref, dest))

    def get_path_image(self, ref: RefLike) -> str:
        """The file's ``/view`` URL, without credentials."""
        return view_url(self._live, ref)

    def __repr__(self) -> str:
        return f"<FileAccess {self.settings.base_url}>"


class FileRoutes(RestBase):
    """Uploading images and masks, fetching files by reference, model file metadata."""

    def upload_image(
        self,
        file: FileInput,
        *,
        filename: Optional[str] = None,
        subfolder: str = "",
        type: str = "input",
        overwrite: bool = False,
    ) -> FileRef:
        """``POST /upload/image``: store ``file`` (a path, bytes or a binary file object; see
        :data:`FileInput`) as ``filename`` (default: the file's own name; required for bytes)
        in ``subfolder`` of the ``type`` directory. ``overwrite`` (true) replaces a file of
        that name. Returns the reference under the name the *server* chose (``name (1).png`` when
        a different file already had that name)."""
        return self._upload("/upload/image", file, filename, subfolder, type, overwrite, None)

    def upload_mask(
        self,
        file: FileInput,
        *,
        original_ref: RefLike,
        filename: Optional[str] = None,
        subfolder: str = "",
        type: str = "input",
        overwrite: bool = False,
    ) -> FileRef:
        """``POST /upload/mask``: store ``original_ref``'s image with ``file``'s alpha channel
        as its mask, under ``filename``/``subfolder``/``type`` and with ``overwrite`` as for
        :meth:`upload_image`.
        Note: the server silently writes nothing when ``original_ref`` does not exist, yet
        still answers with a name."""
        original = json.dumps(file_ref(original_ref).to_wire())
        return self._upload("/upload/mask", file, filename, subfolder, type, overwrite, original)

    def _upload(
        self,
        path: str,
        file: FileInput,
        filename: Optional[str],
        subfolder: str,
        type: str,
        overwrite: bool,
        original_ref: Optional[str],
    ) -> FileRef:
        name, payload, to_close = _upload_part(file, filename)
        fields: Dict[str, str] = {
            "type": type,
            "subfolder": subfolder,
            "overwrite": "true" if overwrite else "false",
        }
        if original_ref is not None:
            fields["original_ref"] = original_ref
        try:
            return self._call("POST", path, FileRef.from_wire, data=fields,
                              files={"image": (name, payload)})
        finally:
            if to_close is not None:
                to_close.close()

    def get_image(
        self, ref: RefLike, *, preview: Optional[str] = None, channel: Optional[str] = None
    ) -> bytes:
        """``GET /view``: the bytes of the file ``ref`` names (in memory — use
        :meth:`download` for big files). ``preview`` (``"webp;80"``, ``"jpeg"``) asks for a
        re-encoded preview, ``channel`` (``"rgb"``, ``"a"``) for one channel."""
        return read_file(self._transport, ref, preview=preview, channel=channel)

    def download(
        self, ref: RefLike, dest: Union[str, os.PathLike[str]], *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Path:
        """``GET /view`` of the file ``ref`` names, streamed to disk in ``chunk_size`` pieces
        (constant memory).

        ``dest`` is a directory when it exists as one, ends with a path separator, or has no
        file suffix (``"out"``): created if needed, the file is saved there under the
        *basename* of its server name, and a name that would escape it raises
        :class:`~comfysync.errors.UnsafePathError` before any request. A ``dest`` with a
        suffix (``"out/cat.png"``) is the file path to write. Returns the path written (the
        same rule as ``OutputFile.save``). Saving into a directory never overwrites: a taken
        name gets ``-1``, ``-2``… before its extension; an exact file path is written as
        named. A redirect of the download to another origin is followed without
        credentials.
        """
        return download_file(self._transport, ref, dest, chunk_size)

    def get_path_image(self, ref: RefLike) -> str:
        """The absolute ``/view`` URL of the file ``ref`` names (without credentials: a
        browser or another tool needs its own access to the server)."""
        return view_url(self._transport, ref)

    def get_view_metadata(self, folder: str, filename: str) -> Optional[Dict[str, Any]]:
        """``GET /view_metadata/{folder}?filename=``: the ``__metadata__`` of the safetensors
        model ``filename`` in the model folder ``folder``, or ``None`` when the file is
        unknown or has none (the server answers 404)."""
        try:
            return self._call("GET", f"/view_metadata/{segment(folder)}", as_dict,
                              params={"filename": filename})
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return None
            raise
