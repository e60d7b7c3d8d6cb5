"""FakeComfyUI's execution worker: one thread that runs queued prompts node by node.

It mirrors ComfyUI's ``PromptExecutor`` closely enough that a client cannot tell the
difference on the wire: the same WebSocket messages in the same order with the same fields and
routing (emitted by :class:`~._run.PromptRun`), outputs cached by node signature so a
resubmission is served from cache, history written after ``execution_success`` and before the
final ``executing null``, the interrupt flag checked before each node and at every progress
update, and errors reported with the exception's type, message and traceback.

Node functions are plain blocking Python; while one runs, an :class:`ExecutionContext` is bound
to the thread (see :mod:`._context`) so ``ProgressBar`` and friends reach this server. The
worker also counts how many times it started each prompt id, so tests can prove that a
retried submission ran once.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from attrs import define

from ._context import NodeInterrupted, bind_context, unbind_context
from ._files import Workdirs
from ._graph import ExecutionList, signatures
from ._hub import Hub
from ._node_calls import NodeClasses, format_value, full_type_name
from ._queue import PromptQueue, Taken
from ._run import Aborted, Interrupts, NodeContext, PromptRun, RunSettings

log = logging.getLogger("comfysync.testing.executor")

#: ``(exception, formatted inputs)`` of a node that failed
_Failure = Tuple[BaseException, Dict[str, List[Any]]]


@define
class CacheEntry:
    ui: Optional[Dict[str, Any]]  #: ``{"meta": …, "output": …}`` or None
    outputs: Tuple[Any, ...]


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
        self.nodes = NodeClasses(node_class)
        self.settings = RunSettings(dirs, preview_method, preview_size)
        self._log_line = log_line
        self._notify = notify
        self.interrupts = Interrupts()
        self._cache: Dict[Hashable, CacheEntry] = {}
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
        self.interrupts.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("worker did not stop within %.1fs (a node ignores interrupts)", timeout)
            self._thread = None

    def abandon_running(self) -> None:
        """Server restart: make the running node stop at its next interruption point; its
        prompt is then dropped (no messages, no history) because the queue generation moved."""
        self.interrupts.set()
        self.reset_cache()

    def reset_cache(self) -> None:
        with self._state_lock:
            self._cache.clear()
        self.nodes.reset()

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

    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        """Global, or only when ``prompt_id`` is the running prompt (as ``POST /interrupt``)."""
        if prompt_id is not None and self.queue.running_prompt_id() != prompt_id:
            return
        self.interrupts.set()

    # -------------------------------------------------------------- worker loop
    def _loop(self) -> None:
        while not self.stopping:
            taken = self.queue.get(timeout=3600.0)
            if taken is not None:
                self._busy = True
                try:
                    self._execute(taken)
                except Aborted:
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

    def _new_run(self, taken: Taken) -> PromptRun:
        def alive() -> bool:
            return taken.generation == self.queue.generation and not self.stopping

        return PromptRun(
            taken, hub=self.hub, alive=alive, interrupts=self.interrupts, settings=self.settings
        )

    def _execute(self, taken: Taken) -> None:
        started = time.perf_counter()
        run = self._new_run(taken)
        prompt = run.prompt
        nodes = self.nodes
        self.interrupts.clear()
        with self._state_lock:
            self._client_id = run.client_id
            self._last_node_id = None
            self._executions[run.prompt_id] = self._executions.get(run.prompt_id, 0) + 1
        run.add_message("execution_start", {"prompt_id": run.prompt_id}, broadcast=False)
        hidden_ctx = {"prompt": prompt, "extra_data": run.extra_data}
        sigs = signatures(
            prompt,
            lambda n: nodes.is_changed(n, prompt, hidden_ctx),
            lambda n: nodes.includes_node_id(prompt, n),
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
            prompt, lambda n: sigs[n] in cache, lambda n: nodes.is_output(prompt, n)
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
                run.send_executed(node_id, cached.ui.get("output") if cached.ui else None)
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
            raise Aborted()
        if run.client_id is not None:
            run.send("executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id)
        self._log_line(f"Prompt executed in {time.perf_counter() - started:.2f} seconds")

    def _run_node(
        self,
        run: PromptRun,
        node_id: str,
        values: Dict[str, Tuple[Any, ...]],
        ui_outputs: Dict[str, Dict[str, Any]],
        hidden_ctx: Dict[str, Any],
    ) -> Optional[_Failure]:
        """Run one node; returns ``(exception, formatted inputs)`` on failure."""
        node = run.prompt[node_id]
        class_type = str(node.get("class_type"))
        run.start_progress(node_id)
        formatted: Dict[str, List[Any]] = {}
        inputs_ready = False
        try:
            cls = self.nodes.get(class_type)
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
            inputs = self.nodes.gather_inputs(cls, node_id, node, values, hidden_ctx)
            formatted = {k: [format_value(v)] for k, v in inputs.items()}
            inputs_ready = True
            function = self.nodes.function_of(cls, node_id, class_type)
            self.interrupts.check()  # ComfyUI checks right before each node function
            token = bind_context(NodeContext(run, node_id))
            try:
                returned = function(**inputs)
            finally:
                unbind_context(token)
        except Aborted:
            raise
        except BaseException as exc:  # noqa: B902 - reported to the client like ComfyUI does
            if not run.alive():
                raise Aborted() from exc
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
            run.send_executed(node_id, output)
        return None

    def _report_failure(
        self,
        run: PromptRun,
        node_id: str,
        error: _Failure,
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


__all__ = ["Executor", "CacheEntry"]
