"""``ComfyApi``: the client object users create.

It glues the layers together: the :class:`~comfysync._http.transport.HttpTransport` (one HTTP
session with the credentials), the REST routes of :class:`~comfysync._rest.methods.RestMethods`,
the server surface that prompt tracking goes through
(:class:`~comfysync._tracking.native.NativeSurface`: REST plus the WebSocket listener), the
prompt :class:`~comfysync._tracking.tracker.Tracker` and the user's
:class:`~comfysync._dispatch.EventBus`. This module holds only construction, lifetime and
delegation; each capability lives in its own module.

The event path is one explicit step, :meth:`ComfyApi._deliver`: every event the listener
decodes (and the few the client makes itself) goes first to the tracker, which attributes
id-less frames to their prompt and updates that prompt (running its ``job.on`` callbacks),
then — attributed — to the user's ``api.on`` subscriptions. Nothing depends on the order in
which anything subscribed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from ._dispatch import Callback, EventBus, ExceptionHandler, Subscription
from ._http.transport import HttpTransport, RetriesArg, TimeoutArg, VerifyArg
from ._http.urls import resolve_server_url
from ._notebook import ProgressDisplay
from ._rest.files import FileAccess
from ._rest.methods import RestMethods
from ._rest.models import FileRef, QueuedPrompt
from ._results import PromptResult
from ._tracking.job import PromptJob, check_timeout
from ._tracking.native import ListenerEvents, NativeSurface
from ._tracking.submission import canonical_prompt_id
from ._tracking.tracker import Tracker
from ._types import TrackerMode, WorkflowLike
from ._v2.assets import AssetUploader
from ._v2.choice import SurfaceChoice, api_key_from_env
from ._v2.stream import V2EventSource
from ._v2.surface import V2Files, V2Surface
from ._v2.switch import SurfaceSwitch
from ._v2.wire import V2Wire
from ._workflow.input_files import InputFile, with_uploads
from ._workflow.node_specs import NodeDefsCache
from ._workflow.prompt import explain_rejection, to_prompt
from .errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ConnectTimeoutError,
    PromptValidationError,
    UnsupportedError,
)
from .events import AuthError, AuthSuccess, Event, EventKey, Preview, Progress, Status

__all__ = ["ComfyApi"]

log = logging.getLogger("comfysync.client")

_TRACKERS = ("auto", "websocket", "http")
#: ``connect()`` / ``with`` return the client itself, typed as the caller's (sub)class.
_Api = TypeVar("_Api", bound="ComfyApi")
_E = TypeVar("_E", bound=Event)
#: How long a concurrent close() waits for the first one (which joins the listener for up
#: to 5 s and the tracker for up to 30 s).
_CLOSE_WAIT = 60.0


def _unreachable(ws_error: ComfyConnectionError, http_error: ComfyError) -> ComfyConnectionError:
    """Neither the socket nor HTTP works: the HTTP message leads (it says what to check:
    host, port, ``--listen``, TLS, proxy), the socket's failure follows. Same class as the
    socket's error (a ``ConnectTimeoutError`` stays one)."""
    message = f"{http_error} (the socket failed too: {ws_error})"
    if isinstance(ws_error, ConnectTimeoutError):
        return ConnectTimeoutError(message, url=ws_error.url)
    return ComfyConnectionError(message, url=ws_error.url)


class ComfyApi(RestMethods):
    """A synchronous client for one ComfyUI server.

    ``url`` is ``"host"``, ``"host:port"`` or ``"http(s)://host[:port][/prefix]"`` (a bare host
    means port 8188; a path prefix — a reverse proxy at ``/comfy/`` — is kept on every route
    and on ``/ws``); without it, ``$COMFYUI_URL``, else ``127.0.0.1:8188``.
    ``auth=(user, password)`` sends HTTP Basic, ``token=`` a Bearer token, ``headers=`` extra
    headers; all three also go on the WebSocket handshake, and only ever to the origin
    (scheme, host, port) of ``url``. ``timeout`` is the seconds allowed for each REST call
    (or ``(connect, read)``), ``verify`` the TLS check (``True``, ``False`` or a CA bundle
    path). ``retries``: how often an idempotent request (``GET``, ``DELETE``…; never
    ``POST``) is retried by urllib3 when the connection cannot be made or the answer is
    502/503/504 (default 2; ``0`` disables; or a urllib3 ``Retry``). ``client_id`` (default:
    a fresh ``uuid4().hex``) is sent with every prompt so this client receives its events.

    ``tracker``: how prompts are followed. ``"auto"`` (default) uses the WebSocket and falls
    back to HTTP polling when the socket cannot be opened but HTTP works; ``"websocket"``
    refuses to fall back (``connect()`` raises); ``"http"`` never opens a socket and polls
    ``/queue`` and ``/history/{id}`` (same results, no progress events).

    ``reconnect`` / ``backoff_base`` / ``backoff_cap`` / ``max_reconnect_attempts``: the
    listener's reconnects (exponential backoff with full jitter; attempts are unlimited while
    prompts are unfinished, else at most ``max_reconnect_attempts``). ``watchdog``: seconds
    without news of an unfinished prompt before it is checked over HTTP. ``poll_interval``:
    ``(first, max)`` delay of the HTTP tracker's per-prompt polling. ``exception_handler``:
    called as ``handler(exc, event, callback)`` when a callback raises (the failure is then
    logged at DEBUG only; without a handler, its traceback once per subscription).

    The REST methods work at once, without ``connect()``. ``close()`` (or leaving a ``with``
    block) releases everything; it is idempotent. ``repr`` never shows credentials.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        client_id: Optional[str] = None,
        auth: Optional[Tuple[str, str]] = None,
        token: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutArg = 30.0,
        verify: VerifyArg = True,
        retries: RetriesArg = None,
        reconnect: bool = True,
        tracker: TrackerMode = "auto",
        exception_handler: Optional[ExceptionHandler] = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_reconnect_attempts: Optional[int] = 10,
        watchdog: float = 10.0,
        poll_interval: Tuple[float, float] = (0.05, 1.0),
        api_key: Optional[str] = None,
        surface: str = "auto",
    ) -> None:
        if tracker not in _TRACKERS:
            raise ValueError(f"tracker must be one of {_TRACKERS}, not {tracker!r}")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValueError("client_id must be a non-empty string")
        if watchdog <= 0:
            raise ValueError("watchdog must be positive")
        self.client_id: str = client_id if client_id is not None else uuid.uuid4().hex
        if api_key is not None and token is not None:
            raise ValueError("give either api_key= or token=, not both (both are the Bearer)")
        if api_key is None and auth is None and token is None:
            api_key = api_key_from_env()
        self._transport = HttpTransport(
            resolve_server_url(url), auth=auth, token=token if api_key is None else api_key,
            headers=headers, timeout=timeout, verify=verify, retries=retries,
        )
        # Which surface the server speaks (native ComfyUI or the Comfy API v2), decided once.
        choice = SurfaceChoice(surface, self._transport.host,
                               probe_native=lambda: self.get_queue_remaining() >= 0,
                               probe_v2=lambda: self._v2.health(timeout=10.0))
        self._transport.route_check = choice.check_route
        self._transport.route_missing = choice.route_missing
        self._v2 = V2Wire(self._transport)
        self._v2_uploads = AssetUploader(self._v2)
        self._v2_events = V2EventSource(self._v2, self._deliver, name=self.client_id[:8],
                                        on_hint=lambda job_id: self._tracker.check_prompt(job_id))
        self.reconnect = bool(reconnect)
        self.tracker_mode = tracker
        # /object_info is hundreds of KB: fetched once per client, when a UI-format workflow
        # first needs converting (refetched once if a workflow uses classes it lacks).
        self._node_defs = NodeDefsCache(self.get_node_defs)
        self._bus = EventBus(exception_handler)
        self._events = ListenerEvents(
            self._transport,
            self.client_id,
            self._deliver,
            has_pending_work=lambda: self._tracker.has_unfinished(),
            options=dict(
                reconnect=self.reconnect,
                backoff_base=backoff_base,
                backoff_cap=backoff_cap,
                max_attempts=max_reconnect_attempts,
            ),
        )
        self._switch = SurfaceSwitch(
            choice,
            native=NativeSurface(self, self._events),
            v2=V2Surface(self._v2, self._v2_events),
            native_files=FileAccess(self._transport),
            v2_files=V2Files(self._v2),
        )
        self._tracker = Tracker(
            self._switch,
            name=self.client_id[:8],
            files=self._switch,
            polling=tracker == "http",
            watchdog=watchdog,
            poll_interval=poll_interval,
            exception_handler=exception_handler,
            on_event_thread=self._on_listener_thread,
        )
        # True once the socket was opened, or given up for HTTP polling: submit() then does
        # not connect first, and wait_for() may wait.
        self._socket_tried = False
        self._lifecycle = threading.Lock()  # serialises connect()
        self._close_lock = threading.Lock()  # guards _closed
        self._closed = False
        self._close_done = threading.Event()
        log.debug("created %r", self)

    @property
    def url(self) -> str:
        """The server's base URL, without credentials (``http://host:8188[/prefix]``)."""
        return self._transport.base_url

    @property
    def surface(self) -> str:
        """``"native"`` (ComfyUI's own routes) or ``"v2"`` (the Comfy API v2: Comfy Cloud, a
        serverless deployment, comfy-api-proxy); with ``surface="auto"`` the server may be
        asked once (``GET /api/v2/health``) the first time this is read."""
        return self._switch.choice.resolve()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._events.connected

    def _state(self) -> str:
        if self._closed:
            return "closed"
        if self.connected:
            return "connected"
        return "polling" if self._tracker.polling else "open"

    def __repr__(self) -> str:
        auth = self._transport.auth_kind
        surface = self._switch.choice.known
        return (
            f"<ComfyApi {self.url} client_id={self.client_id}"
            f"{' auth=' + auth if auth else ''}{' surface=' + surface if surface else ''}"
            f" {self._state()}>"
        )

    # ------------------------------------------------------------------ lifetime

    def connect(self: _Api, timeout: float = 10.0) -> _Api:
        """Open the WebSocket (listener thread; ``feature_flags`` first) and return once the
        server greeted it. Idempotent. With credentials, first makes one authenticated
        request and emits ``AuthSuccess`` or ``AuthError``. With ``tracker="http"`` only
        checks that the server answers. Raises ``ComfyConnectionError`` /
        ``ComfyTimeoutError`` when the server cannot be reached (when the socket fails, one
        HTTP request tells a dead server — its message, with what to check, leads the
        error — from a socket-less one; in ``"auto"`` mode a server whose HTTP works but
        whose socket does not is tracked by polling instead),
        and ``ComfyConnectionError`` when the client was closed meanwhile (a callback may
        call ``close()``)."""
        if self._connect_needed() and self._transport.auth_kind is not None:
            self._check_auth()  # emits events: no lock held, a callback may close() us
        with self._lifecycle:
            if self._connect_needed():
                self._connect(timeout)
        return self

    def _connect_needed(self) -> bool:
        if self._closed:
            raise ComfyConnectionError("this ComfyApi is closed", url=self.url)
        events = self._v2_events if self._switch.choice.known == "v2" else self._events
        return not events.alive

    def _on_listener_thread(self) -> bool:
        return self._events.owns_current_thread() or self._v2_events.owns_current_thread()

    def _deliver(self, event: Event) -> None:
        """The event path: prompt tracking first (attribution, the prompt's state and its
        ``job.on`` callbacks), then the user's subscriptions. Runs on the listener thread
        for socket events."""
        try:
            event = self._tracker.handle_event(event)
        except Exception:  # a tracking bug must not stop the listener or hide the event
            log.exception("prompt tracking failed on a %r event", event.type)
        self._bus.emit(event)

    def _connect(self, timeout: float) -> None:
        try:
            self._connect_native(timeout)
        except UnsupportedError:  # a native route answered 404: the server speaks v2
            if self._switch.choice.known != "v2":
                raise
            self._v2_events.start(timeout)  # no socket: each job streams its own events
            self._socket_tried = True

    def _connect_native(self, timeout: float) -> None:
        if self._switch.choice.known == "v2":
            raise UnsupportedError("no socket on a v2 surface", surface="v2", operation="/ws")
        if self.tracker_mode == "http":
            self.poll_status(timeout=timeout)
            return
        try:
            self._events.start(timeout)
        except ComfyConnectionError as exc:
            if self._closed:
                raise self._closed_meanwhile() from None
            try:
                self.ping()  # is it the socket, or the whole server?
            except UnsupportedError:
                raise
            except ComfyError as http_exc:
                raise _unreachable(exc, http_exc) from http_exc
            if self.tracker_mode == "websocket":
                raise
            log.warning("WebSocket unavailable (%s); tracking prompts by HTTP polling", exc)
            self._socket_tried = True  # submit() does not try the socket again
            self._tracker.set_polling(True)
            return
        if self._closed:
            self._events.stop()
            raise self._closed_meanwhile()
        self._socket_tried = True
        self._switch.choice.decide("native")
        self._tracker.set_polling(False)

    def _closed_meanwhile(self) -> ComfyConnectionError:
        return ComfyConnectionError("this ComfyApi was closed while connecting", url=self.url)

    def _check_auth(self) -> None:
        try:
            try:
                if self._switch.choice.known != "v2":
                    self.get_queue_remaining()
            except UnsupportedError:  # GET /prompt answered 404: the server speaks v2
                pass
            if self._switch.choice.known == "v2":
                self._v2.check_auth()
        except ComfyHTTPError as exc:
            if exc.status in (401, 403):
                self._deliver(AuthError(status=exc.status))
            raise
        self._deliver(AuthSuccess())

    def close(self) -> None:
        """Stop the listener and tracker threads (joined), end unfinished waits with
        ``ComfyConnectionError``, release the HTTP session. Idempotent; REST calls afterwards
        raise :class:`~comfysync.ComfyConnectionError`. Prompts keep running on the server.

        Safe from any thread. A second, concurrent ``close()`` returns once the first one
        finished. Called from a callback (the listener thread) it cannot join that thread,
        which ends as soon as the callback returns (only ``Disconnected`` follows)."""
        with self._close_lock:
            first = not self._closed
            self._closed = True
        if not first:
            if not self._on_own_thread():  # the first close() may be joining this thread
                self._close_done.wait(_CLOSE_WAIT)
            return
        try:
            self._bus.close("this ComfyApi is closed", url=self.url)  # wakes wait_for() first
            self._events.stop()
            self._v2_events.stop()
            self._tracker.close()
            self._transport.close()
        finally:
            self._close_done.set()
        log.debug("closed %r", self)

    def _on_own_thread(self) -> bool:
        """True on this client's listener or tracker thread (user callbacks run there)."""
        return self._tracker.delivers_on_current_thread()

    def __enter__(self: _Api) -> _Api:
        try:
            return self.connect()
        except BaseException:
            self.close()  # nothing of a client that never entered its block stays open
            raise

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Close the client. Leaving the block because of ``KeyboardInterrupt`` or
        ``SystemExit`` (Ctrl-C, ``sys.exit``) first cancels this client's unfinished prompts
        on the server: nobody is left to wait for them."""
        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            try:
                cancelled = self.cancel_all()
            except Exception as cancel_error:  # closing matters more
                log.warning("could not cancel the unfinished prompts: %s", cancel_error)
            else:
                if cancelled:
                    log.info("interrupted: cancelled %d unfinished prompt(s)", cancelled)
        self.close()

    # ------------------------------------------------------------------ events

    @overload
    def on(self, key: Type[_E], callback: Callable[[_E], object]) -> Subscription: ...

    @overload
    def on(self, key: str, callback: Callback) -> Subscription: ...

    def on(self, key: EventKey, callback: Callback) -> Subscription:
        """Call ``callback(event)`` for every event matching ``key`` (wire name, class,
        ``"*"``) on the listener thread, in arrival order. A slow callback delays later
        events; one that raises is logged and the listener goes on.

        Allowed before ``connect()`` (the subscription then sees the connection's own
        events); after ``close()`` it raises ``ComfyConnectionError``: no event would ever
        come."""
        return self._bus.on(key, callback)

    @overload
    def once(self, key: Type[_E], callback: Callable[[_E], object]) -> Subscription: ...

    @overload
    def once(self, key: str, callback: Callback) -> Subscription: ...

    def once(self, key: EventKey, callback: Callback) -> Subscription:
        """Like :meth:`on`, for the first matching event only."""
        return self._bus.once(key, callback)

    def off(self, key: EventKey, callback: Callable[..., Any]) -> None:
        """Remove every subscription of ``callback`` to ``key`` (allowed after ``close()``)."""
        self._bus.off(key, callback)

    @overload
    def wait_for(
        self,
        key: Type[_E],
        predicate: Optional[Callable[[_E], object]] = None,
        timeout: Optional[float] = None,
    ) -> _E: ...

    @overload
    def wait_for(
        self,
        key: str,
        predicate: Optional[Callable[[Any], object]] = None,
        timeout: Optional[float] = None,
    ) -> Event: ...

    def wait_for(
        self,
        key: EventKey,
        predicate: Optional[Callable[[Any], object]] = None,
        timeout: Optional[float] = None,
    ) -> Event:
        """Block until an event matching ``key`` (and ``predicate``) arrives after this call;
        raises ``ComfyTimeoutError`` after ``timeout`` seconds.

        Refused at once where the wait could never end: ``ComfyConnectionError`` once the
        client is closed (and for a wait under way when it closes), and on a client that was
        never connected — unless its tracker is ``"http"``, whose events come from
        :meth:`poll_status` without a socket; ``RuntimeError`` inside a callback on the
        listener thread, the thread that would have to deliver the event. A bad ``timeout``
        raises ``TypeError`` / ``ValueError``."""
        seconds = check_timeout(timeout)
        if self._on_listener_thread():
            raise RuntimeError(
                "wait_for() called from a callback on the listener thread, which delivers "
                "the events it would wait for: use api.once(...), or wait on another thread"
            )
        if not self._socket_tried and self.tracker_mode != "http" and not self._closed:
            raise ComfyConnectionError(
                "not connected: call api.connect() or use `with ComfyApi(...) as api`",
                url=self.url,
            )
        return self._bus.wait_for(key, predicate, seconds)

    def poll_status(self, timeout: float = 1.0) -> Status:
        """Read the queue state over HTTP (``GET /prompt``), emit it as a ``status`` event
        and return it — for callers without a socket. On a Comfy API v2 deployment, which has
        no shared queue, it checks that the deployment answers (``GET /api/v2/health``) and
        returns a status with ``queue_remaining=0`` without emitting it."""
        if self._switch.choice.known == "v2":
            return self._v2.health_status(timeout)
        data = self._transport.request_json("GET", "/prompt", timeout=timeout)
        exec_info = data.get("exec_info") if isinstance(data, Mapping) else None
        remaining = exec_info.get("queue_remaining") if isinstance(exec_info, Mapping) else None
        if not isinstance(remaining, int):
            raise ComfyHTTPError(200, self._transport.url("/prompt"), data,
                                 message="GET /prompt: unexpected answer from the server")
        status = Status(
            queue_remaining=remaining,
            raw={"type": "status", "data": {"status": {"exec_info": dict(exec_info or {})}}},
        )
        self._deliver(status)
        return status

    def delete_from_queue(self, prompt_ids: Union[str, Iterable[str]]) -> None:
        """As on a native server (``POST /queue``); on a Comfy API v2 deployment the jobs
        among ``prompt_ids`` that still wait are cancelled (what a pool does with prompts it
        moved to another server)."""
        if self._switch.choice.known != "v2":
            try:
                super().delete_from_queue(prompt_ids)
                return
            except UnsupportedError:  # the route answered 404: the server speaks v2
                if self._switch.choice.known != "v2":
                    raise
        self._v2.drop_queued([prompt_ids] if isinstance(prompt_ids, str) else list(prompt_ids))

    def upload_image(self, file: Any, *, filename: Optional[str] = None, subfolder: str = "",
                     type: str = "input", overwrite: bool = False) -> FileRef:
        """As on a native server (``POST /upload/image``); on a Comfy API v2 deployment the
        bytes are hashed (blake3) and sent only when the deployment does not have them, and
        the reference returned carries the asset id (set an image input to
        ``ref.reference()``)."""
        if self._switch.choice.known != "v2":
            try:
                return super().upload_image(file, filename=filename, subfolder=subfolder,
                                            type=type, overwrite=overwrite)
            except UnsupportedError:  # the route answered 404: the server speaks v2
                if self._switch.choice.known != "v2":
                    raise
        return self._v2_uploads.upload_ref(file, filename=filename, subfolder=subfolder)

    def _upload_inputs(self, prompt: Dict[str, Any]) -> Dict[str, Any]:
        """The one place local files given as input values (a ``Path`` or ``bytes``, e.g.
        LoadImage's ``image``) reach the server: each is uploaded to this client's server and
        the input set to the server's reference — on a native server, the name
        ``upload_image`` stored it under; on a Comfy API v2 deployment, the asset's
        ``core/ASSET`` reference (the bytes are sent only when the deployment does not have
        them: probed by blake3 hash). The caller's prompt is left as it is (a pool may
        submit it again elsewhere)."""
        return with_uploads(prompt, self._upload_input)

    def _upload_input(self, file: InputFile) -> Any:
        if self.surface == "v2":
            return self._v2_uploads.upload_ref(file.source, filename=file.name).reference()
        ref = self.upload_image(file.source, filename=file.name)
        log.debug("uploaded input %s as %s", file.name, ref.filename)
        return f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename

    # ------------------------------------------------------------------ running work

    def submit(
        self,
        workflow: WorkflowLike,
        *,
        on_progress: Optional[Callable[[Progress], object]] = None,
        on_preview: Optional[Callable[[Preview], object]] = None,
        on_event: Optional[Callable[[Event], object]] = None,
        prompt_id: Optional[str] = None,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
        partial_execution_targets: Optional[Iterable[str]] = None,
        node_defs: Optional[Mapping[str, Any]] = None,
    ) -> PromptJob:
        """Queue ``workflow`` (a ``Workflow``, an API-format dict or a JSON file path; UI
        format is converted with the server's node definitions) and return its
        :class:`PromptJob` at once. ``on_progress`` / ``on_preview`` / ``on_event`` (every
        event of this prompt, id-less previews attributed to it included) are subscribed to
        this prompt before it is posted, so none of its events is missed. Connects first when
        ``connect()`` was never called. A rejected prompt raises ``PromptValidationError``.
        ``node_defs``: node definitions to convert a UI-format workflow with, instead of the
        server's (a Comfy API v2 deployment serves none).

        ``prompt_id``: a canonical UUID string chosen by the caller (default: a new
        ``uuid4``); when the server already has that prompt (queued, running or in history)
        the job follows it instead of running it again — submitting the same id twice never
        runs the workflow twice. When the POST fails in a way that leaves open whether the
        server took the prompt (connection lost after sending, answer timed out, a proxy's
        502/503/504), the server is asked about that id: found → the job follows it; surely
        absent → posted again with the same id; unknown after about 30 s → the error is
        raised with ``e.prompt_id`` set (look again with :meth:`attach`)."""
        return self._submit(
            workflow, on_progress=on_progress, on_preview=on_preview, on_event=on_event,
            prompt_id=prompt_id, deadline=None, front=front, number=number,
            extra_data=extra_data, partial_execution_targets=partial_execution_targets,
            node_defs=node_defs,
        )

    def _submit(
        self,
        workflow: WorkflowLike,
        *,
        on_progress: Optional[Callable[[Progress], object]] = None,
        on_preview: Optional[Callable[[Preview], object]] = None,
        on_event: Optional[Callable[[Event], object]] = None,
        prompt_id: Optional[str] = None,
        deadline: Optional[float] = None,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
        partial_execution_targets: Optional[Iterable[str]] = None,
        node_defs: Optional[Mapping[str, Any]] = None,
    ) -> PromptJob:
        if prompt_id is not None:
            canonical_prompt_id(prompt_id)  # a bad id fails before anything is sent
        prompt = to_prompt(workflow, self._node_defs if node_defs is None else node_defs)
        if not self._socket_tried and self.tracker_mode != "http":
            self.connect()
        prompt = self._upload_inputs(prompt)
        subscribe: List[Tuple[EventKey, Callback]] = []
        if on_progress is not None:
            subscribe.append(("progress", on_progress))
        if on_preview is not None:
            subscribe.append(("b_preview", on_preview))
        if on_event is not None:
            subscribe.append(("*", on_event))
        options = dict(front=front, number=number, extra_data=extra_data,
                       partial_execution_targets=partial_execution_targets)
        try:
            return self._tracker.submit(
                prompt, options, prompt_id=prompt_id, subscribe=subscribe, deadline=deadline
            )
        except PromptValidationError as exc:
            raise explain_rejection(exc, prompt, self._node_defs.cached()) from None

    def queue_prompt(
        self,
        workflow: WorkflowLike,
        *,
        prompt_id: Optional[str] = None,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
    ) -> QueuedPrompt:
        """``POST /prompt`` without tracking: ``workflow`` as for :meth:`submit` (checked,
        and converted from UI format, before anything is sent); options and answer as for
        :meth:`RestMethods.queue_prompt`."""
        prompt = self._upload_inputs(to_prompt(workflow, self._node_defs))
        try:
            return super().queue_prompt(
                prompt, prompt_id=prompt_id, front=front, number=number, extra_data=extra_data
            )
        except PromptValidationError as exc:
            raise explain_rejection(exc, prompt, self._node_defs.cached()) from None

    def run_workflow(
        self,
        workflow: WorkflowLike,
        timeout: Optional[float] = None,
        on_progress: Optional[Callable[[Progress], object]] = None,
        on_preview: Optional[Callable[[Preview], object]] = None,
        progress: bool = False,
        **kwargs: Any,
    ) -> PromptResult:
        """Submit ``workflow`` and block until it ends: the :class:`PromptResult`, or
        ``PromptExecutionError`` / ``PromptInterruptedError`` / ``PromptLostError`` /
        ``PromptTimeoutError`` (after ``timeout`` seconds; the prompt keeps running).
        Safe to call from many threads at once. A ``timeout`` that is not None or a
        non-negative number raises ``TypeError`` / ``ValueError``, and a call from an event or
        future callback ``RuntimeError``, before anything is sent.

        When the wait is interrupted (``KeyboardInterrupt``, ``SystemExit``) the prompt is
        cancelled on the server, then the interrupt goes on; ``job.wait()`` on a job from
        :meth:`submit` leaves the prompt alone.

        ``progress=True`` draws a ``tqdm.auto`` bar while waiting (a widget in Jupyter, text
        on a terminal) and, in a notebook, the latest preview image, updated in place
        (needs tqdm: ``comfysync[notebook]``; ``ImportError`` before anything is sent)."""
        seconds = check_timeout(timeout)
        if self._tracker.delivers_on_current_thread():
            raise RuntimeError(
                "run_workflow() called from an event or future callback, on the thread that "
                "would deliver its result: use api.submit(...) and job.future there, or run "
                "it on another thread"
            )
        display = ProgressDisplay() if progress else None
        deadline = None if seconds is None else time.monotonic() + seconds
        job = self._submit(workflow, on_progress=on_progress, on_preview=on_preview,
                           deadline=deadline, **kwargs)
        try:
            if display is not None:
                return display.wait(job.wait, job.done, lambda: job, seconds)
            return job.wait(seconds)
        except (KeyboardInterrupt, SystemExit):
            # The caller gave up on this prompt: it must not keep the server busy.
            try:
                job.cancel()
            except Exception as exc:  # the interrupt matters more than a failed cancel
                log.warning("could not cancel prompt %s on the server: %s", job.prompt_id, exc)
            raise

    def cancel_all(self) -> int:
        """Cancel every unfinished prompt of this client on the server (dequeue the waiting
        ones, interrupt the running one) and return how many were cancelled. Each job then
        ends as ``"interrupted"`` unless it finished first."""
        return self._tracker.cancel_all()

    def attach(self, prompt_id: str, *, settle: bool = True) -> PromptJob:
        """A :class:`PromptJob` for a prompt already on the server, submitted by any client
        or process (e.g. one whose ``submit`` failed with ``e.prompt_id`` set, or a task
        delivered again after its worker died). It ends at once when the prompt has ended,
        else follows it to its end with the same results and errors as a submitted job
        (checked over HTTP at the polling pace; events too when they reach this client).
        ``job.cancel()`` works as for a submitted job. Raises ``PromptLostError`` when the
        server does not have the prompt, ``ValueError`` for an id that is not a canonical
        UUID, and ``ComfyConnectionError`` when the server cannot be asked.

        A server may still be validating a large prompt posted a moment ago (in neither its
        queue nor its history yet), so "absent" is concluded from two answers about a second
        apart. ``settle=False`` trusts one answer (no wait): only for an id no attempt may have
        posted moments ago, e.g. a task's first delivery."""
        canonical_prompt_id(prompt_id)
        if not self._socket_tried and self.tracker_mode != "http":
            self.connect()
        return self._tracker.attach(prompt_id, settle=settle)
