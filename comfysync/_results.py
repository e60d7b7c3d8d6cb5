"""What a finished prompt produced: :class:`PromptResult` and its :class:`OutputFile` s.

A result is built once, when the tracker ends a job, from two sources that the server fills
at different times: the ``executed`` events of the run (arrive live, may be missed while the
socket is down) and the ``/history/{id}`` entry (written just after the run, complete, but
only on the server's terms). History wins where both know a node; nodes only seen live are
kept. Sampler previews (``b_preview`` frames) are events, never files; the images a
``SaveImageWebsocket`` node streams over the socket are both: events as they arrive, and files
of ``type`` ``"websocket"`` in the result (their bytes kept from the socket: reading or saving
them never asks the server, which stored nothing).

Node outputs are kept exactly as the server sent them (``outputs``); on top of that every item
that looks like a file reference (a dict with a ``filename``) becomes an :class:`OutputFile`,
whatever the output key is called (``images``, ``gifs``, ``audio``, ``video``, ...).
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import logging
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from attrs import define, field

from ._display import GridItem, grid_bundle, sniff
from ._rest.models import HistoryEntry
from ._rest.saving import safe_basename, save_target, stream_to_path
from ._rest.shapes import ms_to_datetime

if TYPE_CHECKING:  # Pillow is optional (the ``pil`` extra)
    from PIL.Image import Image

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]

__all__ = [
    "OutputFile",
    "OutputFiles",
    "PromptResult",
    "build_result",
    "WEBSOCKET_SAVERS",
    "websocket_nodes",
]

log = logging.getLogger("comfysync.results")

PathLike = Union[str, "os.PathLike[str]"]

#: Extensions treated as images when a file dict carries no usable ``format``.
_IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".apng"}
)
_EXTRA_MIME: Dict[str, str] = {".webp": "image/webp", ".avif": "image/avif", ".apng": "image/apng",
               ".flac": "audio/flac", ".opus": "audio/ogg"}


class FileClient(Protocol):
    """How an :class:`OutputFile` reaches the server (``GET /view``): a
    :class:`~comfysync._rest.files.FileAccess`, which outlives its client (same URL,
    credentials and TLS on a short-lived connection once the client is closed)."""

    def get_image(self, ref: Any) -> bytes: ...

    def download(self, ref: Any, dest: Any) -> Path: ...

    def get_path_image(self, ref: Any) -> str: ...


#: Node classes whose images arrive over the WebSocket instead of being written on the server
#: (ComfyUI's bundled ``websocket_image_save`` custom node).
WEBSOCKET_SAVERS = frozenset({"SaveImageWebsocket"})
#: File extension of a received image, by the type its bytes hold.
_RECEIVED_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp",
                    "image/gif": ".gif", "image/bmp": ".bmp", "image/avif": ".avif"}


def websocket_nodes(prompt: Mapping[str, Any]) -> Tuple[str, ...]:
    """Ids of the nodes of an API-format ``prompt`` that send their images over the socket
    (:data:`WEBSOCKET_SAVERS`); their previews are kept as the result's files."""
    return tuple(
        str(node_id)
        for node_id, node in prompt.items()
        if isinstance(node, Mapping) and node.get("class_type") in WEBSOCKET_SAVERS
    )


class ReceivedBytes:
    """The :class:`FileClient` of an image received over the socket: it already has the
    bytes, so ``read()`` returns them and ``save()`` writes them (same saving rule as a
    download) without any request."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def get_image(self, ref: Any) -> bytes:
        return self._data

    def download(self, ref: Any, dest: Any) -> Path:
        return stream_to_path([self._data], save_target(dest, str(ref.filename)))

    def get_path_image(self, ref: Any) -> str:
        return ""  # it is on no server

    def __repr__(self) -> str:
        return f"<ReceivedBytes {len(self._data)} bytes>"


def received_files(images: Mapping[str, List[Tuple[bytes, str]]]) -> List[OutputFile]:
    """The images of websocket-saving nodes (node id → ``(bytes, mime)`` in arrival order)
    as files of ``type`` ``"websocket"``, per node in order, named
    ``websocket_<node>_<n>.<ext>``."""
    files = []
    for node_id, received in images.items():
        label = "".join(c if c.isalnum() else "-" for c in node_id)
        for index, (data, mime) in enumerate(received, start=1):
            suffix = _RECEIVED_SUFFIX.get(sniff(data) or mime, ".bin")
            name = f"websocket_{label}_{index:05}{suffix}"
            files.append(OutputFile(name, "", "websocket", node_id, "", "images",
                                    {"format": sniff(data) or mime}, ReceivedBytes(data)))
    return files


def _guess_mime(filename: str, fmt: Optional[str]) -> Optional[str]:
    suffix = Path(filename).suffix.lower()
    if suffix in _EXTRA_MIME:
        return _EXTRA_MIME[suffix]
    guessed = mimetypes.guess_type("x" + suffix)[0] if suffix else None
    if guessed:
        return guessed
    if fmt and "/" in fmt:  # e.g. VideoHelperSuite's "video/h264-mp4"
        return fmt
    return None


@define(frozen=True)
class OutputFile:
    """One file a node wrote on the server (``GET /view?filename=&subfolder=&type=``).

    ``read()`` downloads it into memory; ``save()`` streams it to disk in constant memory,
    never writes outside the target directory, whatever name the server chose, and never
    overwrites a file there. Both keep working after the client (or pool) that produced
    the file was closed.
    """

    filename: str
    subfolder: str
    #: ``output``, ``temp`` or ``input``; ``websocket`` for an image a ``SaveImageWebsocket``
    #: node sent over the socket (kept in memory: ``read``/``save`` need no server)
    type: str
    node_id: str
    url: str  #: absolute ``/view`` URL (without credentials)
    output_key: str = "images"  #: the output key the item was listed under
    extra: Mapping[str, Any] = field(factory=dict, repr=False)  #: the item's other keys
    _client: Optional[FileClient] = field(default=None, repr=False, eq=False)

    @property
    def mime_type(self) -> Optional[str]:
        """Best guess from the extension (then the item's ``format``); None when unknown."""
        fmt = self.extra.get("format")
        return _guess_mime(self.filename, fmt if isinstance(fmt, str) else None)

    @property
    def is_image(self) -> bool:
        """True for still or animated images (png, jpeg, webp, gif, ...), not video/audio."""
        mime = self.mime_type
        if mime is not None:
            return mime.startswith("image/")
        return Path(self.filename).suffix.lower() in _IMAGE_EXTENSIONS

    def _api(self) -> FileClient:
        if self._client is None:
            raise RuntimeError("this OutputFile is not attached to a ComfyApi")
        return self._client

    def read(self) -> bytes:
        """The file's bytes (whole file in memory: use :meth:`save` for big files)."""
        return self._api().get_image(self)

    def save(self, dest: PathLike) -> Path:
        """Stream the file to disk and return the path written.

        ``dest`` names a **directory** when it exists as one, ends with a path separator, or
        has no file suffix (``"out"``, ``"out/"``, ``"~/renders"``): the directory is created
        (parents too) and the file keeps the basename of its server-side name, which can
        never lead outside it (:class:`~comfysync.errors.UnsafePathError` otherwise, before
        anything is created); when that name is taken, ``-1``, ``-2``… go before the
        extension (``img.png`` → ``img-1.png``) — nothing is overwritten. A ``dest`` with a
        suffix (``"out/cat.png"``) is the exact **file** path to write (its parent is
        created). Nothing is left half-written.
        """
        return self._api().download(self, dest)

    def to_pil(self) -> Image:
        """The file decoded as a ``PIL.Image.Image`` (needs Pillow: ``comfysync[pil]``)."""
        try:
            from PIL import Image as PILImage
        except ImportError:
            raise ImportError(
                'OutputFile.to_pil() needs Pillow: pip install "comfysync[pil]"'
            ) from None
        image = PILImage.open(io.BytesIO(self.read()))
        image.load()
        return image

    if TYPE_CHECKING:  # added at import by comfysync._compat (the comfy-api-client names)

        @property
        def image(self) -> Image:
            """The comfy-api-client name of :meth:`to_pil`."""

    def _repr_png_(self) -> Optional[bytes]:
        """Notebook display: PNG bytes for image files, None (no PNG view) for the rest."""
        if not self.is_image:
            return None
        try:
            if Path(self.filename).suffix.lower() == ".png":
                return self.read()
            image = self.to_pil()
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            return buf.getvalue()
        except Exception as exc:  # a display hook must not raise into the notebook
            log.warning("cannot render %s for display: %s", self.filename, exc)
            return None


def _grid_items(files: Iterable[OutputFile]) -> List[GridItem]:
    return [(f.filename, f.read) for f in files if f.is_image]


def _others_line(files: Iterable[OutputFile]) -> str:
    others = [f.filename for f in files if not f.is_image]
    return f"other files: {', '.join(others)}" if others else ""


class OutputFiles(Tuple[OutputFile, ...]):
    """A tuple of :class:`OutputFile` (``result.files``, ``result.images``) that a notebook
    shows as a grid of its images; otherwise an ordinary tuple."""

    __slots__ = ()

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> Dict[str, Any]:
        return grid_bundle(_grid_items(self), repr(tuple(self)), heading=_others_line(self))


@define(frozen=True)
class PromptResult:
    """The outcome of a successful prompt.

    ``outputs`` is node id → the node's UI output dict as the server sent it; ``files`` every
    file of every output key, ``images`` the image files among them, ``text`` node id → the
    strings of its ``text`` output. Timing comes from the server's timestamps.
    ``node_errors``: output nodes the server refused at queue time while running the rest
    (``POST /prompt`` answered 200 with ``node_errors``; node id → ``{"errors", "class_type",
    "dependent_outputs"}``), so their outputs are missing; usually empty.
    """

    prompt_id: str
    status: str
    outputs: Mapping[str, Mapping[str, Any]] = field(repr=False)
    files: OutputFiles = field(default=OutputFiles(), converter=OutputFiles)
    images: OutputFiles = field(default=OutputFiles(), repr=False, converter=OutputFiles)
    text: Mapping[str, List[str]] = field(factory=dict)
    cached_nodes: Tuple[str, ...] = ()
    started_at: Optional[_dt.datetime] = None
    finished_at: Optional[_dt.datetime] = None
    raw: Optional[Mapping[str, Any]] = field(default=None, repr=False)  #: the history entry
    node_errors: Mapping[str, Any] = field(factory=dict, repr=False)

    @property
    def duration(self) -> Optional[float]:
        """Seconds from ``execution_start`` to the end of the run, when the server said."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def files_of(self, node_id: str) -> OutputFiles:
        """The files one node produced."""
        return OutputFiles(f for f in self.files if f.node_id == node_id)

    if TYPE_CHECKING:  # added at import by comfysync._compat (the comfy-api-client names)

        @property
        def output_images(self) -> OutputFiles:
            """The comfy-api-client name of :attr:`images`."""

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> Dict[str, Any]:
        """Notebook display: a line about the run, then its images as a grid."""
        facts = [f"prompt {self.prompt_id}", self.status]
        if self.duration is not None:
            facts.append(f"{self.duration:.1f} s")
        facts.append(f"{len(self.images)} image{'' if len(self.images) == 1 else 's'}")
        others = _others_line(self.files)
        heading = " · ".join(facts) + (f"; {others}" if others else "")
        bundle = grid_bundle(_grid_items(self.images), repr(self), heading=heading)
        if "text/html" not in bundle:
            bundle["text/html"] = f"<div>{html.escape(heading)}</div>"
        for node_id, strings in self.text.items():
            label, text = html.escape(node_id), html.escape("\n".join(strings))
            bundle["text/html"] += f"<div>text of node {label}:</div><pre>{text}</pre>"
        return bundle

    def save_all(self, directory: PathLike) -> List[Path]:
        """Save every file into ``directory`` — always a directory, created if needed — and
        return the paths written, in the order of :attr:`files`. Each file keeps its
        server basename unless that name is taken — by a file already there or by another
        file of this result (same name in different subfolders) — then ``-1``, ``-2``… go
        before the extension: nothing is overwritten. Every name is checked before anything
        is created."""
        target = Path(directory).expanduser()
        clients = [(f, f._api()) for f in self.files]
        for f in self.files:
            safe_basename(f.filename)  # UnsafePathError before anything is created
        target.mkdir(parents=True, exist_ok=True)
        return [client.download(f, target) for f, client in clients]


def _file_items(
    outputs: Mapping[str, Mapping[str, Any]],
) -> Iterable[Tuple[str, str, Mapping[str, Any]]]:
    for node_id, output in outputs.items():
        for key, value in output.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                    yield node_id, key, item


def _make_file(
    node_id: str, key: str, item: Mapping[str, Any], client: Optional[FileClient]
) -> OutputFile:
    filename = str(item["filename"])
    subfolder = str(item.get("subfolder") or "")
    kind = str(item.get("type") or "output")
    extra = {k: v for k, v in item.items() if k not in ("filename", "subfolder", "type")}
    stub = OutputFile(filename, subfolder, kind, node_id, "", key, extra)
    url = client.get_path_image(stub) if client is not None else ""
    return OutputFile(filename, subfolder, kind, node_id, url, key, extra, client)


def build_result(
    prompt_id: str,
    *,
    history: Optional[HistoryEntry],
    executed: Mapping[str, Optional[Mapping[str, Any]]],
    cached_nodes: Iterable[str] = (),
    started_ms: Optional[float] = None,
    finished_ms: Optional[float] = None,
    node_errors: Optional[Mapping[str, Any]] = None,
    client: Optional[FileClient] = None,
    received: Optional[Mapping[str, List[Tuple[bytes, str]]]] = None,
) -> PromptResult:
    """Merge the live ``executed`` outputs with the history entry into a :class:`PromptResult`.

    Order follows execution (the events), then nodes only history knows. A node whose
    ``executed`` output was ``null`` (cached output node without UI) contributes nothing.
    ``received``: images websocket-saving nodes sent (node id → ``(bytes, mime)`` in
    arrival order); they follow the server's files, as files of ``type`` ``"websocket"``.
    """
    hist_outputs: Mapping[str, Mapping[str, Any]] = history.outputs if history else {}
    outputs: Dict[str, Mapping[str, Any]] = {}
    for node_id, output in executed.items():
        chosen = hist_outputs.get(node_id, output)
        if isinstance(chosen, Mapping):
            outputs[node_id] = chosen
    for node_id, output in hist_outputs.items():
        if node_id not in outputs and isinstance(output, Mapping):
            outputs[str(node_id)] = output

    files = tuple(_make_file(n, k, item, client) for n, k, item in _file_items(outputs))
    files += tuple(received_files(received or {}))
    text: Dict[str, List[str]] = {}
    for node_id, output in outputs.items():
        strings = output.get("text")
        if isinstance(strings, list):
            kept = [s for s in strings if isinstance(s, str)]
            if kept:
                text[node_id] = kept
        elif isinstance(strings, str):
            text[node_id] = [strings]

    cached = list(cached_nodes)
    start_ts: Optional[float] = started_ms
    end_ts = finished_ms
    status = "success"
    if history is not None:
        if not cached:
            cached = history.cached_nodes
        start_ts = (history.message("execution_start") or {}).get("timestamp", started_ms)
        for name in ("execution_success", "execution_error", "execution_interrupted"):
            message = history.message(name)
            if message is not None and "timestamp" in message:
                end_ts = message["timestamp"]
        if history.status_str is not None:
            status = history.status_str

    return PromptResult(
        prompt_id=prompt_id,
        status=status,
        outputs=outputs,
        files=files,
        images=tuple(f for f in files if f.is_image),
        text=text,
        cached_nodes=tuple(cached),
        started_at=ms_to_datetime(start_ts),
        finished_at=ms_to_datetime(end_ts),
        raw=history.raw if history is not None else None,
        node_errors=dict(node_errors or {}),
    )
