"""The state a FakeComfyUI's parts share: its options, folders, node registry, queue,
worker, log buffer and priority counter, and the change signal tests wait on.

The route groups (:mod:`._routes`, :mod:`._file_routes`, :mod:`._jobs`) are given this state
(or the part of it they use), never the server object: the server owns the threads and the
socket hub's lifecycle, the state owns what requests read and change.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

from ._executor import Executor
from ._files import Workdirs
from ._hub import Hub
from ._logs import LogBuffer
from ._queue import PromptQueue

if TYPE_CHECKING:  # the node classes need Pillow: loaded only when a server is built
    from ._nodes import NodeRegistry


class Changes:
    """A condition notified on every server state change (queue, worker, sockets, sent
    messages), so tests wait for a server-side condition instead of sleeping."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._version = 0

    def notify(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Block until ``predicate()`` is true, re-checked after every change. Raises
        ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                version = self._version
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout:.1f}s")
            self._wait_change(version, remaining)

    def _wait_change(self, version: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)


class ServerState:
    """Everything a request handler of one FakeComfyUI may read or change."""

    def __init__(
        self,
        *,
        host: str,
        dirs: Workdirs,
        registry: NodeRegistry,
        preview_method: str,
        preview_size: int,
        max_upload_size: int,
        feature_flags: Mapping[str, Any],
        jobs_api: bool,
    ) -> None:
        self.host = host
        self.port = 0  #: the bound port once the server listens
        self.dirs = dirs
        self.registry = registry
        self.preview_method = preview_method
        self.max_upload_size = max_upload_size
        self.jobs_api = jobs_api
        self._extra_flags = dict(feature_flags)
        self.validate_fn: Optional[Callable[..., Any]] = None  #: replaces the validation
        self.changes = Changes()
        self.hub: Optional[Hub] = None  #: the socket hub while the server listens
        self.logs = LogBuffer(lambda: self.hub)
        self.queue = PromptQueue(self._queue_changed, self.changes.notify)
        self.executor = Executor(
            queue=self.queue,
            hub=self.current_hub,
            node_class=registry.get,
            dirs=dirs,
            preview_method=preview_method,
            preview_size=preview_size,
            log_line=self.logs.line,
            notify=self.changes.notify,
        )
        self._counter = 0
        self._counter_lock = threading.Lock()

    def current_hub(self) -> Hub:
        hub = self.hub
        if hub is None:
            raise RuntimeError("FakeComfyUI is not running")
        return hub

    def _queue_changed(self, remaining: int) -> None:
        hub = self.hub
        if hub is not None:
            hub.send_sync("status", {"status": {"exec_info": {"queue_remaining": remaining}}})

    def connect_info(self, sid: str) -> Tuple[Dict[str, Any], Optional[str]]:
        """What a new socket is told: the queue size, and the running node when ``sid`` is
        the running prompt's client coming back."""
        status = {"exec_info": {"queue_remaining": self.queue.remaining()}}
        return status, self.executor.reconnect_info(sid)

    def take_number(self) -> int:
        """The next priority of ``POST /prompt`` without ``number``."""
        with self._counter_lock:
            number = self._counter
            self._counter += 1
            return number

    def reset_numbers(self) -> None:
        """A restart starts the priority counter again."""
        with self._counter_lock:
            self._counter = 0

    def validate(self, prompt: Any, targets: Any) -> Any:
        """Validate a posted prompt (``_validation.validate_prompt``)."""
        fn = self.validate_fn
        if fn is None:
            from ._validation import validate_prompt

            fn = validate_prompt
        return fn(prompt, self.registry, targets)

    def feature_flags(self) -> Dict[str, Any]:
        flags: Dict[str, Any] = {
            "supports_preview_metadata": True,
            "max_upload_size": self.max_upload_size,
        }
        flags.update(self._extra_flags)
        return flags

    def executions(self, prompt_id: Optional[str] = None) -> Dict[str, int]:
        """Prompt id → times executed (only ``prompt_id``, 0 when never, when given)."""
        counts = self.executor.executions()
        if prompt_id is None:
            return counts
        return {prompt_id: counts.get(prompt_id, 0)}
