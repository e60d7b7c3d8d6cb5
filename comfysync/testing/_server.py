"""``FakeComfyUI``: a real HTTP + WebSocket ComfyUI stand-in running in a background thread.

One event-loop thread serves aiohttp (the framework ComfyUI uses) on ``127.0.0.1`` and an
ephemeral port; one worker thread executes prompts (:mod:`._executor`). What requests read and
change is the server's :class:`~._state.ServerState` (queue and history, node registry, log
buffer, folders); the route groups get that state, never this object. ``stop()`` joins both
threads and closes every socket.

Tests wait on server-side conditions with :meth:`FakeComfyUI.wait_until` (a condition variable
notified on every state change) instead of sleeping, and break things on purpose with the
fault methods (:meth:`drop_websockets`, :meth:`restart`, :meth:`fail_route`, …).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Coroutine,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

from aiohttp import web

from ._executor import Executor
from ._faults import Faults, RequestRecord, internal_error_middleware
from ._file_routes import FileRoutes
from ._files import Workdirs, make_workdirs
from ._hub import Hub
from ._queue import PromptQueue
from ._routes import CoreRoutes, Route
from ._state import ServerState

if TYPE_CHECKING:  # the node classes need Pillow: loaded only when a server is built
    from ._nodes import NodeRegistry

log = logging.getLogger("comfysync.testing.server")

T = TypeVar("T")
DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024
_ids = itertools.count(1)


class FakeComfyUI:
    """An in-process ComfyUI server for tests. Use as a context manager::

        with FakeComfyUI() as server:
            api = ComfyApi(server.url)

    Options: ``port`` (0 = ephemeral), ``host``, ``workdir`` (holds ``input``, ``output``,
    ``temp``, ``user``, ``models``; a temporary directory removed on :meth:`stop` by
    default), ``preview_method`` and ``preview_size`` (what the sampler stand-in does),
    ``max_upload_size`` (bytes; larger bodies get 413), ``feature_flags`` (merged into the
    server's flags), ``models`` (folder → file names), ``nodes`` (extra class_type → class),
    ``jobs_api`` (serve the newer ``/api/jobs`` routes and the newer prompt-id check).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        workdir: Union[str, Path, None] = None,
        preview_method: str = "auto",
        preview_size: int = 512,
        max_upload_size: int = DEFAULT_MAX_UPLOAD,
        feature_flags: Optional[Mapping[str, Any]] = None,
        models: Optional[Mapping[str, Sequence[str]]] = None,
        nodes: Optional[Mapping[str, type]] = None,
        jobs_api: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.preview_method = preview_method
        self.preview_size = preview_size
        self.max_upload_size = max_upload_size
        self.jobs_api = jobs_api
        self._owns_workdir = workdir is None
        root = Path(tempfile.mkdtemp(prefix="fakecomfy-")) if workdir is None else Path(workdir)
        self.dirs: Workdirs = make_workdirs(root)
        self.registry: NodeRegistry = _make_registry(models, self.dirs)
        for class_type, cls in (nodes or {}).items():
            self.registry.register(class_type, cls)
        self.state = ServerState(
            host=host,
            dirs=self.dirs,
            registry=self.registry,
            preview_method=preview_method,
            preview_size=preview_size,
            max_upload_size=max_upload_size,
            feature_flags=feature_flags or {},
            jobs_api=jobs_api,
        )
        self.state.port = port
        self.faults = Faults()
        self.queue: PromptQueue = self.state.queue
        self.executor: Executor = self.state.executor
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._name = f"fakecomfy-{next(_ids)}"
        self._started = False
        self._down = False

    # ================================================================ lifecycle
    def __enter__(self) -> FakeComfyUI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<FakeComfyUI {self.url if self._started else '-'} {state}>"

    @property
    def accepting(self) -> bool:
        """False while stopped and during the downtime of :meth:`restart`."""
        return self._started and not self._down

    @property
    def port(self) -> int:
        """The port the server listens on (the requested one until it is started)."""
        return self.state.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def ws_url(self, client_id: Optional[str] = None) -> str:
        base = f"ws://{self.host}:{self.port}/ws"
        return base if client_id is None else f"{base}?clientId={client_id}"

    def start(self, timeout: float = 10.0) -> FakeComfyUI:
        """Start the event-loop thread, the HTTP server and the worker. Idempotent."""
        if self._started:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._loop_thread = threading.Thread(
            target=self._run_loop, args=(loop,), name=f"{self._name}-loop", daemon=True
        )
        self._loop_thread.start()
        try:
            self._call(self._start_http(self._requested_port), timeout)
        except BaseException:
            self._shutdown_loop(timeout)
            raise
        self.executor.start(f"{self._name}-worker")
        self._started = True
        log.debug("FakeComfyUI listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything: worker joined, sockets closed, loop thread joined, temporary
        workdir removed. Idempotent."""
        if not self._started:
            self._cleanup_workdir()
            return
        self._started = False
        self.executor.stop(timeout)
        try:
            self._call(self._stop_http(), timeout)
        finally:
            self._shutdown_loop(timeout)
            self._cleanup_workdir()
        self.state.changes.notify()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            # Join the default executor's threads (aiohttp resolves and reads files there):
            # close() alone leaves them to end on their own, after stop() returned.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _shutdown_loop(self, timeout: float) -> None:
        loop, thread = self._loop, self._loop_thread
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        self._loop = None
        self._loop_thread = None

    def _cleanup_workdir(self) -> None:
        if self._owns_workdir and self.dirs.root.exists():
            shutil.rmtree(self.dirs.root, ignore_errors=True)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine on the server loop from another thread and wait for it."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("FakeComfyUI is not running")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result(timeout)

    async def _start_http(self, port: int) -> None:
        assert self._loop is not None
        hub = Hub(
            self._loop,
            self.state.changes.notify,
            self.state.feature_flags,
            self.state.connect_info,
            self.faults.take_ws_refusal,
        )
        hub.start()
        self.state.hub = hub
        app = self._make_app()
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.state.port = int(address[1])
                break

    async def _stop_http(self) -> None:
        if self.state.hub is not None:
            await self.state.hub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _make_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.max_upload_size,
            middlewares=[self.faults.middleware, internal_error_middleware],
        )
        routes: List[Route] = [("GET", "/ws", self._ws_handler)]
        core = CoreRoutes(self.state)
        routes += core.routes() + FileRoutes(self.dirs).routes()
        if self.jobs_api:
            from ._jobs import JobRoutes

            routes += JobRoutes(self.queue, self.executor.interrupt).routes()
        table = [(m, p, h) for m, p, h in routes]
        table += [(m, "/api" + p, h) for m, p, h in routes]  # the /api twins
        table += core.internal_routes()
        table.append(("GET", "/fake/requests", self._requests_route))
        for method, path, handler in table:
            if method == "GET":  # GET routes also answer HEAD, as aiohttp's add_get does
                app.router.add_get(path, handler)
            else:
                app.router.add_route(method, path, handler)
        return app

    async def _requests_route(self, request: web.Request) -> web.Response:
        """``[{"method", "path", "query"}]``: the requests seen so far (a debug route, like
        ``/fake/executions``), so tests in other processes can check which lookups a client
        made; ``?prompt_id=`` keeps those naming that prompt in their path or query."""
        wanted = request.rel_url.query.get("prompt_id")
        seen = [
            {"method": r.method, "path": r.path, "query": r.query}
            for r in self.faults.requests()
            if wanted is None or wanted in r.path or wanted in "".join(r.query.values())
        ]
        return web.json_response(seen)

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        return await self.state.current_hub().handle(request)

    # ===================================================================== nodes
    def register_node(self, class_type: str, cls: type, display_name: Optional[str] = None) -> None:
        """Add a ComfyUI-shaped node class (INPUT_TYPES / RETURN_TYPES / FUNCTION …)."""
        self.registry.register(class_type, cls, display_name)

    # ============================================================ introspection
    def client_ids(self) -> List[str]:
        """Client ids of the registered WebSocket connections."""
        hub = self.state.hub
        return hub.client_ids() if hub is not None else []

    @property
    def requests(self) -> List[RequestRecord]:
        """Every HTTP request (and WS handshake) received, oldest first."""
        return self.faults.requests()

    def history(self) -> Dict[str, Any]:
        return self.queue.history()

    def executions(self, prompt_id: Optional[str] = None) -> Dict[str, int]:
        """Prompt id → how many times this server started executing it (a prompt served
        twice counts twice; one never run is absent). Also at ``GET /fake/executions``
        (``?prompt_id=`` for one), for tests whose server runs in another process."""
        return self.state.executions(prompt_id)

    def queue_state(self) -> tuple[List[Any], List[Any]]:
        """``(running, pending)`` as ``GET /queue`` would show them."""
        return self.queue.snapshot()

    def is_idle(self) -> bool:
        """Nothing queued or running, and every WS message delivered."""
        hub = self.state.hub
        return (
            self.queue.is_idle()
            and not self.executor.busy
            and (hub is None or hub.pending() == 0)
        )

    # ==================================================================== waits
    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate()`` is true; it is re-checked after every server state
        change (queue, worker, sockets, sent messages). Raises ``TimeoutError``."""
        self.state.changes.wait_until(predicate, timeout)

    def wait_for_idle(self, timeout: float = 10.0) -> None:
        self.wait_until(self.is_idle, timeout)

    def wait_for_client(self, client_id: str, timeout: float = 10.0) -> None:
        """Until a WebSocket with this ``clientId`` is registered."""
        self.wait_until(lambda: client_id in self.client_ids(), timeout)

    def wait_for_running(self, prompt_id: Optional[str] = None, timeout: float = 10.0) -> str:
        """Until a prompt (this one, if given) is running; returns its id."""
        found: List[str] = []

        def check() -> bool:
            running = self.queue.running_prompt_id()
            if running is not None and (prompt_id is None or running == prompt_id):
                found.append(running)
                return True
            return False

        self.wait_until(check, timeout)
        return found[0]

    # ============================================================ worker control
    def pause(self) -> None:
        """Hold queued prompts pending (the running one finishes)."""
        self.queue.set_paused(True)

    def resume(self) -> None:
        self.queue.set_paused(False)

    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        """Same as ``POST /interrupt``."""
        self.executor.interrupt(prompt_id)

    # =================================================================== faults
    def drop_websockets(self, abrupt: bool = False) -> None:
        """Close every WebSocket now (``abrupt``: cut TCP without a close frame)."""
        hub = self.state.current_hub()
        self._call(hub.close_all(abrupt=abrupt), 10.0)
        self.wait_until(lambda: hub.open_count() == 0, 10.0)

    def refuse_websockets(self, count: Optional[int] = 1) -> None:
        """Answer the next ``count`` WS handshakes with 403 (None: all, until
        :meth:`accept_websockets`)."""
        self.faults.refuse_websockets(count)

    def accept_websockets(self) -> None:
        self.faults.accept_websockets()

    def set_delay(self, seconds: float) -> None:
        """Delay every HTTP response (and WS handshake) by ``seconds``."""
        self.faults.set_delay(seconds)

    def fail_route(
        self,
        path: str,
        status: int,
        body: Any = None,
        times: Optional[int] = None,
        method: Optional[str] = None,
    ) -> None:
        """Answer ``path`` (and its ``/api`` twin) with ``status`` and ``body`` (dict/list →
        JSON, str → text, bytes → raw) ``times`` times (None: until :meth:`clear_faults`)."""
        self.faults.fail_route(path, status, body, times, method)

    def clear_faults(self) -> None:
        self.faults.clear()

    def restart(self, downtime: float = 0.0, timeout: float = 10.0) -> None:
        """Simulate a server restart on the same port: every connection is cut, the queue,
        the running prompt (never written to history), caches, the priority counter and
        the socket registry are lost; history is kept. With ``downtime`` the port refuses
        connections for that many seconds."""
        if not self._started:
            raise RuntimeError("FakeComfyUI is not running")
        self.queue.reset()
        self.executor.abandon_running()
        self.state.reset_numbers()
        self._call(self._stop_http(), timeout)
        self._down = True
        self.state.changes.notify()
        try:
            if downtime > 0:
                time.sleep(downtime)
            self._call(self._start_http(self.port), timeout)
        finally:
            self._down = False
            self.state.changes.notify()

    def send_message(self, event_type: str, data: Any, client_id: Optional[str] = None) -> None:
        """Send ``{"type": event_type, "data": data}`` to one client (or all)."""
        self.state.current_hub().send_sync(event_type, data, client_id)

    def send_unknown_message(
        self, type: str = "x.custom", data: Any = None, client_id: Optional[str] = None
    ) -> None:
        """A message type the SDK does not know (clients must ignore it)."""
        self.send_message(type, {"value": 1} if data is None else data, client_id)

    def send_malformed_json(self, client_id: Optional[str] = None) -> None:
        """A text frame that is not valid JSON."""
        self.state.current_hub().send_raw_sync('{"type": "status", "data": {', client_id)

    def send_truncated_binary(
        self, client_id: Optional[str] = None, frame: bytes = b"\x00\x00"
    ) -> None:
        """A binary frame too short to hold its header (or ``frame`` as given)."""
        self.state.current_hub().send_bytes_sync(frame, client_id)

    def send_binary(self, frame: bytes, client_id: Optional[str] = None) -> None:
        self.state.current_hub().send_bytes_sync(frame, client_id)


def _make_registry(models: Optional[Mapping[str, Sequence[str]]], dirs: Workdirs) -> NodeRegistry:
    """The built-in registry (``_nodes.default_registry``) over the server's folders; imported
    here so that ``import comfysync.testing`` does not load the node classes."""
    from ._nodes import default_registry

    return default_registry(models, dirs.input, output_dir=dirs.output, temp_dir=dirs.temp)
