"""One method per ComfyUI HTTP route (the REST half of :class:`~comfysync.ComfyApi`).

:class:`RestMethods` needs only ``self._transport`` (an
:class:`~comfysync._transport.HttpTransport`) and ``self.client_id``; it keeps no other state,
so the client class can mix it in next to the listener and the tracker. Paths, bodies and
query parameters follow ComfyUI v0.3.64 (protocol reference §3–§10, §17 for the jobs API).

Submitting is split in two so the tracking layer can register a prompt *before* it is posted:
:func:`to_api_prompt` turns whatever the user passed into an API-format dict (refusing UI
format before any request), then :meth:`RestMethods._post_prompt` posts it under a prompt id
chosen by the caller. :meth:`RestMethods.queue_prompt` is both steps in one.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import quote

from ._files import DEFAULT_CHUNK_SIZE, safe_join, stream_to_path
from ._format import is_ui_format, read_json_file
from ._models import (
    FileRef,
    HistoryEntry,
    NodeDef,
    QueuedPrompt,
    QueueState,
    SamplerInfo,
    SystemStats,
)
from ._transport import HttpTransport, iter_response
from .errors import (
    ComfyHTTPError,
    PromptValidationError,
    WorkflowFormatError,
    _format_node_errors,
)

__all__ = ["FileInput", "RefLike", "RestMethods", "WorkflowInput", "new_prompt_id",
           "to_api_prompt"]

log = logging.getLogger("comfysync.rest")

WorkflowInput = Any
"""A workflow: an API-format mapping, a path to an API-format JSON file, or any object with a
``to_dict()`` method returning one (e.g. :class:`~comfysync.Workflow`)."""

FileInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
"""Upload source: a path, raw bytes, or a binary file object opened for reading."""

RefLike = Any
"""A server file: a :class:`FileRef`, an output item dict (``filename``/``subfolder``/``type``),
anything with those attributes (e.g. ``OutputFile``), or a bare filename (type ``output``)."""

T = TypeVar("T")

_UI_FORMAT_HELP = (
    "it is a UI-format workflow (top-level 'nodes' and 'links', as saved by ComfyUI's "
    "'Save'). The server only runs API format: in ComfyUI use 'Export (API)' (enable dev "
    "mode options in older versions), or convert it with "
    "Workflow.from_ui(ui_json, api.get_node_defs())"
)


def new_prompt_id() -> str:
    """A prompt id in the only form newer servers accept: a canonical UUID4 string."""
    return str(uuid.uuid4())


def to_api_prompt(workflow: WorkflowInput) -> Dict[str, Any]:
    """The API-format prompt dict for ``workflow``, checked enough to fail early.

    Accepts a mapping, a path (``str``/``PathLike``) to a JSON file, or an object with
    ``to_dict()``. Raises :class:`WorkflowFormatError` — before anything is sent — for a
    UI-format workflow, a file that is missing or not JSON, nodes without ``class_type``, or
    values that cannot be serialised as JSON. Returns a deep copy: later changes to the
    caller's object do not affect what was submitted.
    """
    source = ""
    if isinstance(workflow, (str, os.PathLike)):
        source = f" in {os.fspath(workflow)}"
        data: Any = read_json_file(workflow)
    elif isinstance(workflow, Mapping):
        data = workflow
    elif callable(getattr(workflow, "to_dict", None)):
        data = workflow.to_dict()
    else:
        raise WorkflowFormatError(
            "a workflow must be an API-format dict, a path to an API-format JSON file, or an "
            f"object with to_dict(); got {type(workflow).__name__}"
        )
    if not isinstance(data, Mapping):
        raise WorkflowFormatError(
            f"the workflow{source} must be a JSON object of nodes, not {type(data).__name__}"
        )
    if is_ui_format(data):
        raise WorkflowFormatError(f"cannot submit the workflow{source} as it is: " +
                                  _UI_FORMAT_HELP)
    if not data:
        raise WorkflowFormatError(f"the workflow{source} has no nodes")
    for node_id, node in data.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            raise WorkflowFormatError(
                f"node {node_id!r}{source} is not an API-format node: expected "
                '{"class_type": "...", "inputs": {...}}'
            )
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            raise WorkflowFormatError(
                f"node {node_id!r} ({node['class_type']}){source}: 'inputs' must be an object"
            )
    try:
        encoded = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkflowFormatError(f"the workflow{source} is not JSON-serialisable: {exc}") from None
    result: Dict[str, Any] = json.loads(encoded)
    return result


def _ref(ref: RefLike) -> FileRef:
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


def _ids(prompt_ids: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(prompt_ids, str):
        return [prompt_ids]
    return [str(p) for p in prompt_ids]


def _segment(value: str) -> str:
    """One URL path segment: every ``/`` and reserved character percent-encoded."""
    return quote(str(value), safe="")


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


class RestMethods:
    """Every HTTP route of the ComfyUI server as a blocking method.

    All methods raise :class:`~comfysync.ComfyConnectionError`,
    :class:`~comfysync.ComfyTimeoutError` or :class:`~comfysync.ComfyHTTPError` (status, URL,
    body) on failure, never a ``requests`` or JSON exception.
    """

    _transport: HttpTransport
    client_id: str

    # -- plumbing ----------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._transport.request_json(method, path, **kwargs)

    def _parse(self, parse: Callable[[Any], T], data: Any, method: str, path: str) -> T:
        """Apply a model parser; a shape it cannot read becomes a :class:`ComfyHTTPError`."""
        try:
            return parse(data)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            url = self._transport.url(path)
            raise ComfyHTTPError(
                200, url, data, method=method,
                message=f"{method} {url}: unexpected answer from the server ({exc})",
            ) from None

    # -- prompts and the queue ---------------------------------------------------------------

    def queue_prompt(
        self,
        workflow: WorkflowInput,
        *,
        prompt_id: Optional[str] = None,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
    ) -> QueuedPrompt:
        """``POST /prompt``: queue ``workflow`` and return the server's answer.

        ``client_id`` is always sent, so this client's WebSocket receives the prompt's events.
        ``prompt_id`` defaults to a fresh UUID4. ``number`` sets the priority explicitly
        (lower runs first); otherwise ``front=True`` puts the prompt ahead of normal ones.
        A prompt the server rejects raises :class:`~comfysync.PromptValidationError`.
        This only queues: ``submit()``/``run_workflow()`` also track the prompt to the end.
        """
        prompt = to_api_prompt(workflow)
        return self._post_prompt(
            prompt, prompt_id if prompt_id is not None else new_prompt_id(),
            front=front, number=number, extra_data=extra_data,
        )

    def _post_prompt(
        self,
        prompt: Mapping[str, Any],
        prompt_id: str,
        *,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
        partial_execution_targets: Optional[Iterable[str]] = None,
    ) -> QueuedPrompt:
        """Post an already normalised prompt (see :func:`to_api_prompt`) under ``prompt_id``."""
        body: Dict[str, Any] = {
            "prompt": prompt,
            "client_id": self.client_id,
            "prompt_id": str(prompt_id),
        }
        if number is not None:
            body["number"] = number
        elif front:
            body["front"] = True
        if extra_data:
            body["extra_data"] = dict(extra_data)
        if partial_execution_targets is not None:
            body["partial_execution_targets"] = [str(t) for t in partial_execution_targets]
        try:
            data = self._json("POST", "/prompt", json=body)
        except ComfyHTTPError as exc:
            raise self._validation_error(exc) from None
        queued = self._parse(QueuedPrompt.from_wire, data, "POST", "/prompt")
        if queued.node_errors:
            log.warning(
                "prompt %s was queued, but some outputs failed validation and will not run:\n%s",
                queued.prompt_id,
                "\n".join(f"  {line}" for line in _format_node_errors(queued.node_errors)),
            )
        return queued

    @staticmethod
    def _validation_error(exc: ComfyHTTPError) -> ComfyHTTPError:
        body = exc.body
        if exc.status == 400 and isinstance(body, Mapping) and (
            isinstance(body.get("error"), Mapping) or isinstance(body.get("node_errors"), Mapping)
        ):
            error = body.get("error")
            node_errors = body.get("node_errors")
            return PromptValidationError(
                error if isinstance(error, Mapping) else {"message": str(error or "")},
                node_errors if isinstance(node_errors, Mapping) else {},
                status=exc.status,
                url=exc.url,
                body=body,
            )
        return exc

    def get_queue(self) -> QueueState:
        """``GET /queue``: the running prompt and the pending ones in execution order."""
        return self._parse(QueueState.from_wire, self._json("GET", "/queue"), "GET", "/queue")

    def get_queue_remaining(self) -> int:
        """``GET /prompt``: how many prompts are pending or running."""
        data = self._json("GET", "/prompt")

        def parse(d: Any) -> int:
            return int(d["exec_info"]["queue_remaining"])

        return self._parse(parse, data, "GET", "/prompt")

    def delete_from_queue(self, prompt_ids: Union[str, Iterable[str]]) -> None:
        """``POST /queue {"delete": [...]}``: drop pending prompts (running/unknown ids are
        ignored by the server; use :meth:`interrupt` for the running one)."""
        self._transport.request("POST", "/queue", json={"delete": _ids(prompt_ids)})

    def clear_queue(self) -> None:
        """``POST /queue {"clear": true}``: drop every pending prompt (not the running one)."""
        self._transport.request("POST", "/queue", json={"clear": True})

    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        """``POST /interrupt``: stop the running prompt. With ``prompt_id``, only if that prompt
        is the one running (otherwise nothing happens); without, whatever runs."""
        body = {"prompt_id": str(prompt_id)} if prompt_id is not None else {}
        self._transport.request("POST", "/interrupt", json=body)

    # -- history -----------------------------------------------------------------------------

    def get_history(self, prompt_id: str) -> Optional[HistoryEntry]:
        """``GET /history/{id}``: the finished prompt, or ``None`` when the server has none."""
        path = f"/history/{_segment(prompt_id)}"
        data = self._json("GET", path)

        def parse(d: Any) -> Optional[HistoryEntry]:
            if not d:
                return None
            entry = d.get(str(prompt_id))
            return HistoryEntry.from_wire(str(prompt_id), entry) if entry is not None else None

        return self._parse(parse, data, "GET", path)

    def get_histories(
        self, max_items: Optional[int] = None, offset: Optional[int] = None
    ) -> Dict[str, HistoryEntry]:
        """``GET /history``: prompt id → entry, oldest first. ``max_items`` alone gives the
        newest N; ``offset`` skips the oldest K."""
        params = {"max_items": max_items, "offset": offset}
        data = self._json("GET", "/history", params=params)

        def parse(d: Any) -> Dict[str, HistoryEntry]:
            return {str(k): HistoryEntry.from_wire(str(k), v) for k, v in (d or {}).items()}

        return self._parse(parse, data, "GET", "/history")

    def delete_history(self, prompt_ids: Union[str, Iterable[str]]) -> None:
        """``POST /history {"delete": [...]}`` (unknown ids are ignored)."""
        self._transport.request("POST", "/history", json={"delete": _ids(prompt_ids)})

    def clear_history(self) -> None:
        """``POST /history {"clear": true}``."""
        self._transport.request("POST", "/history", json={"clear": True})

    # -- memory and system -------------------------------------------------------------------

    def free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """``POST /free``: unload models and/or drop caches (applied when the worker is idle)."""
        self._transport.request(
            "POST", "/free",
            json={"unload_models": bool(unload_models), "free_memory": bool(free_memory)},
        )

    def get_system_stats(self) -> SystemStats:
        """``GET /system_stats``: versions, RAM, devices."""
        data = self._json("GET", "/system_stats")
        return self._parse(SystemStats.from_wire, data, "GET", "/system_stats")

    def get_features(self) -> Dict[str, Any]:
        """``GET /features``: the server's feature flags (e.g. ``max_upload_size``)."""
        return self._parse(_as_dict, self._json("GET", "/features"), "GET", "/features")

    def get_embeddings(self) -> List[str]:
        """``GET /embeddings``: embedding names without extension."""
        return self._parse(_as_str_list, self._json("GET", "/embeddings"), "GET", "/embeddings")

    def get_extensions(self) -> List[str]:
        """``GET /extensions``: URL paths of the frontend extension scripts."""
        return self._parse(_as_str_list, self._json("GET", "/extensions"), "GET", "/extensions")

    def get_model_folders(self) -> List[str]:
        """``GET /models``: model folder names (``checkpoints``, ``loras``, …)."""
        return self._parse(_as_str_list, self._json("GET", "/models"), "GET", "/models")

    def get_models(self, folder: str) -> List[str]:
        """``GET /models/{folder}``: file names in a model folder (404 for an unknown one)."""
        path = f"/models/{_segment(folder)}"
        return self._parse(_as_str_list, self._json("GET", path), "GET", path)

    # -- node definitions --------------------------------------------------------------------

    def get_node_defs(self, node_class: Optional[str] = None) -> Dict[str, NodeDef]:
        """``GET /object_info[/{class}]``: class name → :class:`NodeDef`. For one class the
        dict is empty when the server does not know it."""
        path = "/object_info" if node_class is None else f"/object_info/{_segment(node_class)}"
        data = self._json("GET", path)

        def parse(d: Any) -> Dict[str, NodeDef]:
            return {str(k): NodeDef.from_wire(str(k), v) for k, v in (d or {}).items()}

        return self._parse(parse, data, "GET", path)

    def get_node_def(self, node_class: str) -> Optional[NodeDef]:
        """One node definition, or ``None`` when the server does not know the class."""
        return self.get_node_defs(node_class).get(node_class)

    def _combo(self, node_class: str, input_name: str) -> List[str]:
        node = self.get_node_def(node_class)
        options = node.combo_options(input_name) if node is not None else None
        return [str(o) for o in options or []]

    def get_checkpoints(self) -> List[str]:
        """Checkpoint names, as ``CheckpointLoaderSimple`` offers them."""
        return self._combo("CheckpointLoaderSimple", "ckpt_name")

    def get_loras(self) -> List[str]:
        """LoRA names, as ``LoraLoader`` offers them."""
        return self._combo("LoraLoader", "lora_name")

    def get_sampler_info(self) -> SamplerInfo:
        """Sampler and scheduler names, as ``KSampler`` offers them."""
        node = self.get_node_def("KSampler")
        return SamplerInfo.from_node_def(node) if node is not None else SamplerInfo()

    # -- files -------------------------------------------------------------------------------

    def upload_image(
        self,
        file: FileInput,
        *,
        filename: Optional[str] = None,
        subfolder: str = "",
        type: str = "input",
        overwrite: bool = False,
    ) -> FileRef:
        """``POST /upload/image``. Returns the reference under the name the *server* chose
        (``name (1).png`` when a different file already had that name)."""
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
        as its mask. Note: the server silently writes nothing when ``original_ref`` does not
        exist, yet still answers with a name."""
        original = json.dumps(_ref(original_ref).to_wire())
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
            data = self._json("POST", path, data=fields, files={"image": (name, payload)})
        finally:
            if to_close is not None:
                to_close.close()
        return self._parse(FileRef.from_wire, data, "POST", path)

    @staticmethod
    def _view_params(ref: FileRef, **extra: Optional[str]) -> Dict[str, Any]:
        params: Dict[str, Any] = dict(ref.to_wire())
        params.update({k: v for k, v in extra.items() if v is not None})
        return params

    def get_image(
        self, ref: RefLike, *, preview: Optional[str] = None, channel: Optional[str] = None
    ) -> bytes:
        """``GET /view``: the file's bytes (in memory — use :meth:`download` for big files).
        ``preview="webp;80"`` or ``"jpeg"`` asks for a re-encoded preview, ``channel`` for
        ``rgb``/``a``."""
        params = self._view_params(_ref(ref), preview=preview, channel=channel)
        return self._transport.request("GET", "/view", params=params).content

    def download(
        self, ref: RefLike, dest: Union[str, os.PathLike[str]], *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Path:
        """``GET /view`` streamed to disk in ``chunk_size`` pieces (constant memory).

        ``dest`` is a directory when it exists as one or ends with a path separator: the file
        is saved there under the *basename* of its server name, and a name that would escape
        the directory raises :class:`~comfysync.errors.UnsafePathError` before any request.
        Otherwise ``dest`` is the file path to write. Returns the path written.
        """
        file_ref = _ref(ref)
        text = os.fspath(dest)
        target_dir = Path(text).expanduser()
        if target_dir.is_dir() or text.endswith(("/", os.sep)):
            target = safe_join(target_dir, file_ref.filename)
        else:
            target = target_dir
        params = self._view_params(file_ref)
        response = self._transport.request("GET", "/view", params=params, stream=True)
        chunks = iter_response(response, chunk_size=chunk_size,
                               url=self._transport.url("/view", params))
        written = stream_to_path(chunks, target, chunk_size)
        log.debug("downloaded %s to %s", file_ref.filename, written)
        return written

    def get_path_image(self, ref: RefLike) -> str:
        """The absolute ``/view`` URL of a file (without credentials: a browser or another
        tool needs its own access to the server)."""
        return self._transport.url("/view", self._view_params(_ref(ref)))

    def get_view_metadata(self, folder: str, filename: str) -> Optional[Dict[str, Any]]:
        """``GET /view_metadata/{folder}?filename=``: a safetensors model's ``__metadata__``,
        or ``None`` when the file is unknown or has none (the server answers 404)."""
        path = f"/view_metadata/{_segment(folder)}"
        try:
            data = self._json("GET", path, params={"filename": filename})
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return self._parse(_as_dict, data, "GET", path)

    # -- users and settings ------------------------------------------------------------------

    def get_users(self) -> Dict[str, Any]:
        """``GET /users``: ``{"storage", "migrated"}`` or, with ``--multi-user``, ``users``."""
        return self._parse(_as_dict, self._json("GET", "/users"), "GET", "/users")

    def create_user(self, username: str) -> str:
        """``POST /users``: create a user; returns the new user id."""
        data = self._json("POST", "/users", json={"username": username})
        return self._parse(_as_str, data, "POST", "/users")

    def get_settings(self) -> Dict[str, Any]:
        """``GET /settings``: every stored setting."""
        return self._parse(_as_dict, self._json("GET", "/settings"), "GET", "/settings")

    def get_setting(self, id: str) -> Any:
        """``GET /settings/{id}``: one setting's value, ``None`` when unset."""
        return self._json("GET", f"/settings/{_segment(id)}")

    def store_settings(self, settings: Mapping[str, Any]) -> None:
        """``POST /settings``: merge these settings into the stored ones."""
        self._transport.request("POST", "/settings", json=dict(settings))

    def store_setting(self, id: str, value: Any) -> None:
        """``POST /settings/{id}``: set one setting to any JSON value."""
        self._transport.request("POST", f"/settings/{_segment(id)}", json=value)

    # -- user data ---------------------------------------------------------------------------

    def get_user_data(self, file: str) -> bytes:
        """``GET /userdata/{file}``: the raw bytes of a user file (``"workflows/x.json"``)."""
        return self._transport.request("GET", f"/userdata/{_segment(file)}").content

    def store_user_data(
        self, file: str, data: Any, *, overwrite: bool = True, full_info: bool = False
    ) -> Any:
        """``POST /userdata/{file}``: store ``data`` (bytes, text, or any JSON value, which is
        encoded). Returns the stored path (or, with ``full_info``, path/size/times).
        ``overwrite=False`` makes an existing file a 409 error."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        elif isinstance(data, str):
            payload = data.encode("utf-8")
        else:
            payload = json.dumps(data).encode("utf-8")
        params = {"overwrite": None if overwrite else False, "full_info": full_info or None}
        return self._json("POST", f"/userdata/{_segment(file)}", params=params, data=payload)

    def delete_user_data(self, file: str) -> None:
        """``DELETE /userdata/{file}``."""
        self._transport.request("DELETE", f"/userdata/{_segment(file)}")

    def move_user_data(
        self, src: str, dest: str, *, overwrite: bool = False, full_info: bool = False
    ) -> Any:
        """``POST /userdata/{src}/move/{dest}``; returns the new path. Refuses (409) to replace
        an existing ``dest`` unless ``overwrite=True``."""
        path = f"/userdata/{_segment(src)}/move/{_segment(dest)}"
        params = {"overwrite": bool(overwrite), "full_info": full_info or None}
        return self._json("POST", path, params=params)

    def list_user_data(
        self, dir: str, *, recurse: bool = False, full_info: bool = False, split: bool = False
    ) -> List[Any]:
        """``GET /userdata?dir=``: files (not directories) under ``dir``, relative to it."""
        params = {"dir": dir, "recurse": recurse or None, "full_info": full_info or None,
                  "split": split or None}
        data = self._json("GET", "/userdata", params=params)
        return self._parse(_as_list, data, "GET", "/userdata")

    # -- internal ----------------------------------------------------------------------------

    def get_logs(self) -> str:
        """``GET /internal/logs``: the server's recent log output as one string."""
        return self._parse(_as_str, self._json("GET", "/internal/logs"), "GET", "/internal/logs")

    # -- jobs API (newer servers) ------------------------------------------------------------

    def _jobs_call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._json(method, path, **kwargs)
        except ComfyHTTPError as exc:
            job_missing = isinstance(exc.body, Mapping) and "error" in exc.body
            if exc.status in (404, 405) and not job_missing:
                raise ComfyHTTPError(
                    exc.status, exc.url, exc.body, method=exc.method,
                    message=(
                        f"{exc.method} {exc.url} failed with HTTP {exc.status}: this server "
                        "has no jobs API (/api/jobs, added after ComfyUI v0.3.64); use "
                        "get_queue()/get_history() or delete_from_queue()/interrupt() instead"
                    ),
                ) from None
            raise

    def get_jobs(
        self,
        status: Union[None, str, Iterable[str]] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        *,
        workflow_id: Optional[str] = None,
        sort_by: Optional[str] = None,
        sort_order: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``GET /api/jobs``: ``{"jobs": [...], "pagination": {...}}``. ``status`` is one of
        or a list of ``pending``, ``in_progress``, ``completed``, ``failed``."""
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        params = {"status": status, "limit": limit, "offset": offset,
                  "workflow_id": workflow_id, "sort_by": sort_by, "sort_order": sort_order}
        data = self._jobs_call("GET", "/api/jobs", params=params)
        return self._parse(_as_dict, data, "GET", "/api/jobs")

    def get_job(self, prompt_id: str) -> Dict[str, Any]:
        """``GET /api/jobs/{id}``: one job with its outputs and status."""
        path = f"/api/jobs/{_segment(prompt_id)}"
        return self._parse(_as_dict, self._jobs_call("GET", path), "GET", path)

    def cancel_jobs(self, prompt_ids: Union[str, Iterable[str]]) -> bool:
        """``POST /api/jobs/cancel``: dequeue pending / interrupt running jobs, atomically on
        the server. Returns the server's ``cancelled`` flag."""
        data = self._jobs_call("POST", "/api/jobs/cancel", json={"job_ids": _ids(prompt_ids)})
        return self._parse(_cancelled, data, "POST", "/api/jobs/cancel")

    def cancel_job(self, prompt_id: str) -> bool:
        """``POST /api/jobs/{id}/cancel`` (idempotent). Returns ``cancelled``."""
        path = f"/api/jobs/{_segment(prompt_id)}/cancel"
        return self._parse(_cancelled, self._jobs_call("POST", path), "POST", path)

    # -- health ------------------------------------------------------------------------------

    def ping(self) -> float:
        """Round-trip seconds of ``GET /prompt``; raises when the server is unreachable."""
        started = time.monotonic()
        self._json("GET", "/prompt")
        return time.monotonic() - started


def _as_dict(data: Any) -> Dict[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return dict(data)


def _as_list(data: Any) -> List[Any]:
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON array, got {type(data).__name__}")
    return list(data)


def _as_str_list(data: Any) -> List[str]:
    return [str(x) for x in _as_list(data)]


def _as_str(data: Any) -> str:
    if not isinstance(data, str):
        raise TypeError(f"expected a JSON string, got {type(data).__name__}")
    return data


def _cancelled(data: Any) -> bool:
    return bool(_as_dict(data)["cancelled"])

