"""FakeComfyUI's execution worker: one thread that runs queued prompts node by node.

It mirrors ComfyUI's ``PromptExecutor`` closely enough that a client cannot tell the
difference on the wire: the same WebSocket messages in the same order with the same fields and
routing (§11.3–11.5), outputs cached by node signature so a resubmission is served from cache,
history written after ``execution_success`` and before the final ``executing null``, the
interrupt flag checked before each node and at every progress update, and errors reported with
the exception's type, message and traceback.

Node functions are plain blocking Python; while one runs, an :class:`ExecutionContext` is bound
to the thread (see :mod:`._context`) so ``ProgressBar`` and friends reach this server.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple

from attrs import define

from ._context import NodeInterrupted, PreviewTuple, bind_context, unbind_context
from ._files import Workdirs
from ._graph import ExecutionList, hashable, is_link, signatures
from ._hub import BIN_PREVIEW, BIN_PREVIEW_WITH_METADATA, BIN_TEXT, Hub, binary_frame
from ._queue import PromptQueue, Taken

log = logging.getLogger("comfysync.testing.executor")

#: hidden input kinds a node may declare, and where their value comes from
_HIDDEN_FROM_EXTRA = {
    "EXTRA_PNGINFO": "extra_pnginfo",
    "AUTH_TOKEN_COMFY_ORG": "auth_token_comfy_org",
    "API_KEY_COMFY_ORG": "api_key_comfy_org",
}


def now_ms() -> int:
    return int(time.time() * 1000)


def full_type_name(cls: type) -> str:
    """``ValueError`` for builtins, ``module.QualName`` otherwise (as ComfyUI reports it)."""
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def encode_image(image_format: str, image: Any, max_size: Optional[int]) -> bytes:
    """Encode a PIL image as the server does for previews (quality 95 / compress level 1),
    first fitting it inside ``max_size``² (which also upscales, §12)."""
    from PIL import Image, ImageOps

    if max_size is not None:
        bilinear = getattr(Image, "Resampling", Image).BILINEAR  # Pillow < 9.1: Image.BILINEAR
        image = ImageOps.contain(image, (max_size, max_size), bilinear)
    if image_format.upper() in ("JPEG", "JPG") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=image_format, quality=95, compress_level=1)
    return buf.getvalue()


@define
class CacheEntry:
    ui: Optional[Dict[str, Any]]  #: ``{"meta": …, "output": …}`` or None
    outputs: Tuple[Any, ...]


class _Aborted(Exception):
    """The server restarted (or stopped) while this prompt ran: drop it silently."""


def _input_types(cls: type) -> Dict[str, Any]:
    try:
        spec = cls.INPUT_TYPES()  # type: ignore[attr-defined]
    except Exception:  # a broken node definition fails at call time instead
        log.exception("INPUT_TYPES of %s raised", cls.__name__)
        return {}
    return spec if isinstance(spec, dict) else {}


def _hidden_kinds(cls: type) -> Dict[str, str]:
    hidden = _input_types(cls).get("hidden", {}) or {}
    out: Dict[str, str] = {}
    for name, kind in hidden.items():
        if isinstance(kind, (list, tuple)):
            kind = kind[0] if kind else ""
        out[str(name)] = str(kind)
    return out


class _Run:
    """The state of one prompt's execution (ComfyUI's executor + progress registry)."""

    def __init__(self, executor: Executor, taken: Taken) -> None:
        self.ex = executor
        self.taken = taken
        item = taken.item
        self.prompt_id: str = str(item[1])
        self.prompt: Dict[str, Any] = item[2]
        self.extra_data: Dict[str, Any] = item[3]
        self.outputs_to_execute: List[str] = [str(o) for o in item[4]]
        cid = self.extra_data.get("client_id")
        self.client_id: Optional[str] = None if cid is None else str(cid)
        self.messages: List[List[Any]] = []
        self.progress: Dict[str, Dict[str, Any]] = {}

    # ----------------------------------------------------------------- emission
    def alive(self) -> bool:
        return self.taken.generation == self.ex.queue.generation and not self.ex.stopping

    def send(self, event: str, data: Any, sid: Optional[str]) -> None:
        if not self.alive():
            raise _Aborted()
        self.ex.hub().send_sync(event, data, sid)

    def send_bytes(self, payload: bytes, sid: Optional[str]) -> None:
        if not self.alive():
            raise _Aborted()
        self.ex.hub().send_bytes_sync(payload, sid)

    def add_message(self, event: str, data: Dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": now_ms()}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.send(event, data, self.client_id)

    def _progress_state(self) -> None:
        nodes = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self.progress.items()
            if entry["state"] != "pending"
        }
        self.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes}, self.client_id)

    def _entry(self, node_id: str) -> Dict[str, Any]:
        if node_id not in self.progress:
            self.progress[node_id] = {"state": "pending", "value": 0, "max": 1}
        return self.progress[node_id]

    def start_progress(self, node_id: str) -> None:
        self._entry(node_id).update(state="running", value=0.0, max=1.0)
        self._progress_state()

    def finish_progress(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._progress_state()

    def progress_hook(
        self, node_id: str, value: float, max_value: float, preview: Optional[PreviewTuple]
    ) -> None:
        """ComfyUI's global progress hook (§13): interruption point, ``progress_state``,
        [type-4], ``progress``, [type-1]."""
        self.ex.check_interrupted()
        self._entry(node_id).update(state="running", value=value, max=max_value)
        self._progress_state()
        metadata_client = self.ex.hub().supports_preview_metadata(self.client_id)
        if preview is not None and metadata_client:
            image_format, image, max_size = preview
            data = encode_image(image_format, image, max_size)
            meta = {
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": "image/png" if image_format == "PNG" else "image/jpeg",
            }
            meta_bytes = json.dumps(meta).encode("utf-8")
            payload = struct.pack(">I", len(meta_bytes)) + meta_bytes + data
            self.send_bytes(binary_frame(BIN_PREVIEW_WITH_METADATA, payload), self.client_id)
        progress = {"value": value, "max": max_value, "prompt_id": self.prompt_id, "node": node_id}
        self.send("progress", progress, self.client_id)
        if preview is not None and not metadata_client:
            image_format, image, max_size = preview
            data = encode_image(image_format, image, max_size)
            code = 2 if image_format == "PNG" else 1
            frame = binary_frame(BIN_PREVIEW, struct.pack(">I", code) + data)
            self.send_bytes(frame, self.client_id)


class NodeContext:
    """The :class:`~._context.ExecutionContext` of one running node."""

    def __init__(self, run: _Run, node_id: str) -> None:
        self._run = run
        self.prompt_id = run.prompt_id
        self.node_id = node_id
        self.display_node_id = node_id
        dirs = run.ex.dirs
        self.input_dir: Path = dirs.input
        self.output_dir: Path = dirs.output
        self.temp_dir: Path = dirs.temp
        self.preview_size: int = run.ex.preview_size
        self.preview_method: str = run.ex.preview_method
        self.client_id: Optional[str] = run.client_id
        self.extra_data: Dict[str, Any] = run.extra_data

    def progress(self, value: float, max: float, preview: Optional[PreviewTuple] = None) -> None:
        self._run.progress_hook(self.node_id, value, max, preview)

    def check_interrupted(self) -> None:
        self._run.ex.check_interrupted()

    def sleep(self, seconds: float) -> None:
        if self._run.ex.interrupt_event.wait(max(0.0, seconds)):
            self.check_interrupted()

    def send_text(self, text: str, *, sid: Optional[str] = None) -> None:
        node = self.node_id.encode("utf-8")
        payload = struct.pack(">I", len(node)) + node + text.encode("utf-8")
        self._run.send_bytes(binary_frame(BIN_TEXT, payload), sid)

    def send_image_frame(self, image_format: str, image: Any) -> None:
        data = encode_image(image_format, image, None)
        code = 2 if image_format.upper() == "PNG" else 1
        self._run.send_bytes(
            binary_frame(BIN_PREVIEW, struct.pack(">I", code) + data), self._run.client_id
        )

    def send_json(self, event_type: str, data: Any, *, sid: Optional[str] = None) -> None:
        self._run.send(event_type, data, sid)


class Executor:
    """The worker thread plus the output cache it keeps between prompts."""

    def __init__(
        self,
        *,
        queue: PromptQueue,
        hub: Callable[[], Hub],
        node_class: Callable[[str], Optional[type]],
        dirs: Workdirs,
        preview_method: str,
        preview_size: int,
        log_line: Callable[[str], None],
        notify: Callable[[], None],
    ) -> None:
        self.queue = queue
        self.hub = hub
        self.node_class = node_class
        self.dirs = dirs
        self.preview_method = preview_method
        self.preview_size = preview_size
        self._log_line = log_line
        self._notify = notify
        self.interrupt_event = threading.Event()
        self._cache: Dict[Hashable, CacheEntry] = {}
        self._objects: Dict[Tuple[str, str], Any] = {}
        self._state_lock = threading.Lock()
        self._client_id: Optional[str] = None
        self._last_node_id: Optional[str] = None
        self._busy = False
        self.stopping = False
        self._thread: Optional[threading.Thread] = None
        self._executions: Dict[str, int] = {}

    # --------------------------------------------------------------- lifecycle
    def start(self, name: str) -> None:
        self.stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping = True
        self.interrupt_event.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("worker did not stop within %.1fs (a node ignores interrupts)", timeout)
            self._thread = None

    def abandon_running(self) -> None:
        """Server restart: make the running node stop at its next interruption point; its
        prompt is then dropped (no messages, no history) because the queue generation moved."""
        self.interrupt_event.set()
        self.reset_cache()

    def reset_cache(self) -> None:
        with self._state_lock:
            self._cache.clear()
            self._objects.clear()

    @property
    def busy(self) -> bool:
        return self._busy

    def executions(self) -> Dict[str, int]:
        """Prompt id → how many times the worker started executing it (kept across restarts:
        a prompt a restart dropped mid-run was executed all the same)."""
        with self._state_lock:
            return dict(self._executions)

    def reconnect_info(self, sid: str) -> Optional[str]:
        """The node to announce to a client reconnecting as the running prompt's client."""
        with self._state_lock:
            if self._client_id == sid:
                return self._last_node_id
        return None

    # --------------------------------------------------------------- interrupts
    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        """Global, or only when ``prompt_id`` is the running prompt (§6.1)."""
        if prompt_id is not None and self.queue.running_prompt_id() != prompt_id:
            return
        self.interrupt_event.set()

    def check_interrupted(self) -> None:
        if self.interrupt_event.is_set():
            self.interrupt_event.clear()
            raise NodeInterrupted("Processing interrupted")

    # -------------------------------------------------------------- worker loop
    def _loop(self) -> None:
        while not self.stopping:
            taken = self.queue.get(timeout=3600.0)
            if taken is not None:
                self._busy = True
                try:
                    self._execute(taken)
                except _Aborted:
                    log.info("prompt %s dropped by a restart", taken.prompt_id)
                except Exception:  # the worker must survive anything a node does
                    log.exception("worker failed on prompt %s", taken.prompt_id)
                finally:
                    with self._state_lock:
                        self._client_id = None
                        self._last_node_id = None
                    self._busy = False
                    self._notify()
            flags = self.queue.take_flags()
            if flags.get("free_memory"):
                self.reset_cache()

    def _is_changed(
        self, node_id: str, prompt: Mapping[str, Any], hidden: Dict[str, Any]
    ) -> Hashable:
        node = prompt[node_id]
        cls = self.node_class(str(node.get("class_type")))
        is_changed = getattr(cls, "IS_CHANGED", None)
        if cls is None or is_changed is None:
            return False
        kwargs = {k: v for k, v in (node.get("inputs") or {}).items() if not is_link(v)}
        for name, kind in _hidden_kinds(cls).items():
            kwargs[name] = self._hidden_value(kind, node_id, hidden)
        try:
            value = is_changed(**kwargs)
        except Exception as exc:  # ComfyUI: NaN, i.e. never cached
            log.warning("IS_CHANGED of node %s raised: %s", node_id, exc)
            return hashable(float("nan"))
        return hashable(value)

    @staticmethod
    def _hidden_value(kind: str, node_id: str, ctx: Dict[str, Any]) -> Any:
        if kind in ("PROMPT", "DYNPROMPT"):
            return ctx["prompt"]
        if kind == "UNIQUE_ID":
            return node_id
        if kind in _HIDDEN_FROM_EXTRA:
            return ctx["extra_data"].get(_HIDDEN_FROM_EXTRA[kind])
        return None

    def _includes_node_id(self, prompt: Mapping[str, Any], node_id: str) -> bool:
        cls = self.node_class(str(prompt[node_id].get("class_type")))
        if cls is None:
            return False
        if getattr(cls, "NOT_IDEMPOTENT", False):
            return True
        return "UNIQUE_ID" in _hidden_kinds(cls).values()

    def _is_output(self, prompt: Mapping[str, Any], node_id: str) -> bool:
        cls = self.node_class(str(prompt[node_id].get("class_type")))
        return cls is not None and getattr(cls, "OUTPUT_NODE", False) is True

    def _execute(self, taken: Taken) -> None:
        started = time.perf_counter()
        run = _Run(self, taken)
        prompt = run.prompt
        self.interrupt_event.clear()
        with self._state_lock:
            self._client_id = run.client_id
            self._last_node_id = None
            self._executions[run.prompt_id] = self._executions.get(run.prompt_id, 0) + 1
        run.add_message("execution_start", {"prompt_id": run.prompt_id}, broadcast=False)
        hidden_ctx = {"prompt": prompt, "extra_data": run.extra_data}
        sigs = signatures(
            prompt,
            lambda n: self._is_changed(n, prompt, hidden_ctx),
            lambda n: self._includes_node_id(prompt, n),
        )
        with self._state_lock:
            wanted = set(sigs.values())
            for key in [k for k in self._cache if k not in wanted]:
                del self._cache[key]
            cache = dict(self._cache)
        cached_nodes = [n for n in prompt if sigs[n] in cache]
        run.add_message(
            "execution_cached", {"nodes": cached_nodes, "prompt_id": run.prompt_id}, broadcast=False
        )
        values: Dict[str, Tuple[Any, ...]] = {n: cache[sigs[n]].outputs for n in cached_nodes}
        ui_outputs: Dict[str, Dict[str, Any]] = {}
        executed: List[str] = []
        current_outputs = list(prompt)
        order = ExecutionList(
            prompt, lambda n: sigs[n] in cache, lambda n: self._is_output(prompt, n)
        )
        for node_id in run.outputs_to_execute:
            if node_id in prompt:
                order.add_node(node_id)
        success = True
        while not order.is_empty():
            picked = order.next_node()
            if picked is None:
                break  # a cycle: validation rejects these, nothing sensible to run
            node_id = picked
            cached = cache.get(sigs[node_id])
            if cached is not None:
                if run.client_id is not None:
                    output = cached.ui.get("output") if cached.ui is not None else None
                    run.send(
                        "executed",
                        {"node": node_id, "display_node": node_id, "output": output,
                         "prompt_id": run.prompt_id},
                        run.client_id,
                    )
                if cached.ui is not None:
                    ui_outputs[node_id] = cached.ui
                run.finish_progress(node_id)
                values[node_id] = cached.outputs
                order.complete(node_id)
                continue
            error = self._run_node(run, node_id, values, ui_outputs, hidden_ctx)
            if error is not None:
                success = False
                self._report_failure(run, node_id, error, executed, current_outputs)
                break
            entry = CacheEntry(ui=ui_outputs.get(node_id), outputs=values[node_id])
            with self._state_lock:
                self._cache[sigs[node_id]] = entry
            cache[sigs[node_id]] = entry
            run.finish_progress(node_id)
            executed.append(node_id)
            order.complete(node_id)
        if success:
            run.add_message("execution_success", {"prompt_id": run.prompt_id}, broadcast=False)
        with self._state_lock:
            self._last_node_id = None
        # v0.3.64 reads history outputs from its UI cache for every node of the prompt, so
        # cached nodes that were never staged (non-output nodes, or any node after an
        # interrupt or error) keep their UI there too.
        for node_id in prompt:
            known = cache.get(sigs[node_id])
            if node_id not in ui_outputs and known is not None and known.ui is not None:
                ui_outputs[node_id] = known.ui
        result = {
            "outputs": {n: ui["output"] for n, ui in ui_outputs.items()},
            "status": {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": run.messages,
            },
            "meta": {n: ui["meta"] for n, ui in ui_outputs.items()},
        }
        if not run.alive() or not self.queue.task_done(taken, result):
            raise _Aborted()
        if run.client_id is not None:
            run.send("executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id)
        self._log_line(f"Prompt executed in {time.perf_counter() - started:.2f} seconds")

    def _run_node(
        self,
        run: _Run,
        node_id: str,
        values: Dict[str, Tuple[Any, ...]],
        ui_outputs: Dict[str, Dict[str, Any]],
        hidden_ctx: Dict[str, Any],
    ) -> Optional[Tuple[BaseException, Dict[str, List[Any]]]]:
        """Run one node; returns ``(exception, formatted inputs)`` on failure."""
        node = run.prompt[node_id]
        class_type = str(node.get("class_type"))
        run.start_progress(node_id)
        inputs: Dict[str, Any] = {}
        formatted: Dict[str, List[Any]] = {}
        inputs_ready = False
        try:
            cls = self.node_class(class_type)
            if cls is None:
                raise KeyError(class_type)
            if run.client_id is not None:
                with self._state_lock:
                    self._last_node_id = node_id
                run.send(
                    "executing",
                    {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id},
                    run.client_id,
                )
            spec = _input_types(cls)
            declared = list((spec.get("required") or {}).keys()) + list(
                (spec.get("optional") or {}).keys()
            )
            raw = node.get("inputs") or {}
            for name in declared:
                if name not in raw:
                    continue
                value = raw[name]
                if is_link(value):
                    value = values[value[0]][value[1]]
                inputs[name] = value
            for name, kind in _hidden_kinds(cls).items():
                inputs[name] = self._hidden_value(kind, node_id, hidden_ctx)
            formatted = {k: [format_value(v)] for k, v in inputs.items()}
            inputs_ready = True
            key = (node_id, class_type)
            with self._state_lock:
                obj = self._objects.get(key)
            if obj is None:
                obj = cls()
                with self._state_lock:
                    self._objects[key] = obj
            function = getattr(obj, str(getattr(cls, "FUNCTION", "")))
            self.check_interrupted()  # ComfyUI checks right before each node function
            token = bind_context(NodeContext(run, node_id))
            try:
                returned = function(**inputs)
            finally:
                unbind_context(token)
        except _Aborted:
            raise
        except BaseException as exc:  # noqa: B902 - reported to the client like ComfyUI does
            if not run.alive():
                raise _Aborted() from exc
            if not isinstance(exc, Exception):
                raise
            return exc, (formatted if inputs_ready else {})
        ui: Dict[str, Any] = {}
        result: Any = returned
        if isinstance(returned, dict):
            ui = returned.get("ui") or {}
            result = returned.get("result", ())
        if result is None:
            result = ()
        values[node_id] = tuple(result)
        if ui:
            output = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in ui.items()}
            ui_outputs[node_id] = {
                "meta": {
                    "node_id": node_id,
                    "display_node": node_id,
                    "parent_node": None,
                    "real_node_id": node_id,
                },
                "output": output,
            }
            if run.client_id is not None:
                run.send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": output,
                     "prompt_id": run.prompt_id},
                    run.client_id,
                )
        return None

    def _report_failure(
        self,
        run: _Run,
        node_id: str,
        error: Tuple[BaseException, Dict[str, List[Any]]],
        executed: List[str],
        current_outputs: List[str],
    ) -> None:
        exc, formatted = error
        class_type = str(run.prompt[node_id].get("class_type"))
        if isinstance(exc, NodeInterrupted):
            self._log_line("Processing interrupted")
            run.add_message(
                "execution_interrupted",
                {"prompt_id": run.prompt_id, "node_id": node_id, "node_type": class_type,
                 "executed": list(executed)},
                broadcast=True,
            )
            return
        self._log_line(f"!!! Exception during processing !!! {exc}")
        self._log_line("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        run.add_message(
            "execution_error",
            {
                "prompt_id": run.prompt_id,
                "node_id": node_id,
                "node_type": class_type,
                "executed": list(executed),
                "exception_message": f"{exc}\n",
                "exception_type": full_type_name(type(exc)),
                "traceback": traceback.format_tb(exc.__traceback__),
                "current_inputs": formatted,
                "current_outputs": list(current_outputs),
            },
            broadcast=False,
        )


__all__ = ["Executor", "NodeContext", "CacheEntry", "full_type_name", "encode_image"]
