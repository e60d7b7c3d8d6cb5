"""The listener: the one thread that owns the WebSocket.

``start()`` spawns a daemon thread that opens ``/ws?clientId=…`` (:mod:`.connection`: the
handshake headers carry the credentials and extra headers, TLS follows ``verify``, redirects
only within the origin), sends the ``feature_flags`` message as its first frame and waits for
the server's greeting (the first ``status``, which carries ``sid``). From then on it loops
``receive → decode → sink``: every decoded event goes, in arrival order and on this thread, to
the one ``sink`` callable it was built with (the client's delivery step, which hands it to
prompt tracking and then to user callbacks). The listener only reads and decodes: it
attributes nothing to prompts. websocket-client reads and writes the socket;
:class:`~comfysync._ws.frames.MessageReader` hands out whole messages with RFC 6455's rules
enforced. A message that cannot be decoded is logged and skipped; a broken frame stream drops
the connection (answered with close code 1002).

When the socket drops it sends ``Disconnected`` and reconnects with the *same* client id:
``Reconnecting(attempt, delay)`` as :mod:`.reconnect` schedules it, the old socket closed
*before* the new one opens (the server unregisters by id when an old socket closes, which
would silence the new one), ``feature_flags`` sent again, and after the greeting
``Reconnected`` plus ``on_socket_ready(reconnected=True)`` so the tracker can reconcile what
happened during the gap. Giving up sends ``ReconnectionFailed`` and ends the thread. With
``reconnect=False`` a drop is followed by ``ReconnectionFailed(attempts=0)`` at once: the
socket is gone for good either way. A socket that fails or closes before its greeting is a
failed attempt; a greeted one resets the reconnect delay to its shortest (see
:mod:`.reconnect` for the exact rule).

``stop()`` sets a flag, sends a close frame and shuts the socket down (which wakes a blocked
read, also mid-handshake) and joins the thread. The server sends no pings, so the listener
pings after ``ping_interval`` seconds of silence and treats a second silent interval as a
dead connection.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

import websocket

from ..errors import ComfyConnectionError, ConnectTimeoutError
from ..events import (
    Connected,
    Disconnected,
    Event,
    FeatureFlags,
    Reconnected,
    Reconnecting,
    ReconnectionFailed,
    Status,
)
from .connection import (
    PROTOCOL_ERROR,
    AttemptFailed,
    answer_code,
    classify,
    close_reason,
    describe,
    open_websocket,
    release,
    wake,
)
from .frames import OP_BINARY, OP_CLOSE, OP_TEXT, MessageReader
from .reconnect import ReconnectPolicy
from .wire import FrameError, decode_binary, decode_text

__all__ = ["Listener", "ConnectTimeoutError", "DEFAULT_FEATURE_FLAGS"]

logger = logging.getLogger("comfysync.listener")

#: What the listener announces in its first frame: type-4 previews carry prompt and node ids.
DEFAULT_FEATURE_FLAGS: Mapping[str, Any] = {"supports_preview_metadata": True}


class _Connection:
    """One open socket and the reader of its messages."""

    __slots__ = ("ws", "reader")

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.reader = MessageReader(ws)


class WebSocketSource(Protocol):
    """What the listener needs from the transport (``HttpTransport`` provides it)."""

    def ws_url(self, client_id: str) -> str: ...

    def ws_headers(self) -> List[str]: ...

    def ws_sslopt(self) -> Dict[str, Any]: ...


class _Stopped(Exception):
    """``stop()`` was called while connecting."""


def _display_url(url: str) -> str:
    """The socket URL for messages: no credentials (there are none in ws_url) and no query."""
    return url.split("?", 1)[0]


class Listener:
    """One WebSocket thread for one client id; events go to ``sink``. See the module docstring.

    ``backoff_base``/``backoff_cap``/``max_attempts``/``has_pending_work``: the reconnect
    policy (:mod:`.reconnect`). ``handshake_timeout``: bound of each reconnect's handshake
    and greeting.
    """

    def __init__(
        self,
        transport: WebSocketSource,
        client_id: str,
        sink: Callable[[Event], object],
        *,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_attempts: Optional[int] = 10,
        has_pending_work: Callable[[], bool] = lambda: False,
        on_socket_ready: Callable[[bool], object] = lambda reconnected: None,
        handshake_timeout: float = 10.0,
        ping_interval: Optional[float] = 20.0,
        feature_flags: Optional[Mapping[str, Any]] = None,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._policy = ReconnectPolicy(
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_attempts=max_attempts,
            has_pending_work=has_pending_work,
            rng=rng,
        )
        if handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError("ping_interval must be positive or None")
        self._transport = transport
        self.client_id = client_id
        self._sink = sink
        self.reconnect = reconnect
        self._on_socket_ready = on_socket_ready
        self.handshake_timeout = float(handshake_timeout)
        self.ping_interval = ping_interval
        flags = DEFAULT_FEATURE_FLAGS if feature_flags is None else feature_flags
        self._hello = json.dumps({"type": "feature_flags", "data": dict(flags)})

        self._lifecycle = threading.Lock()  # serialises start()/stop()
        self._ws_lock = threading.Lock()  # guards _ws against stop() from another thread
        self._ws: Optional[websocket.WebSocket] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._startup_error: Optional[ComfyConnectionError] = None
        self._connected = False
        self._connect_timeout = self.handshake_timeout
        #: The server's ``sid`` from the last greeting (equals ``client_id`` on ComfyUI).
        self.sid: Optional[str] = None
        #: The server's feature flags from the last ``feature_flags`` answer.
        self.server_features: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------------ public

    @property
    def connected(self) -> bool:
        """True while a greeted socket is open."""
        return self._connected

    @property
    def alive(self) -> bool:
        """True while the thread runs (connected, or reconnecting)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def owns_current_thread(self) -> bool:
        """True when called on the listener thread (from a callback)."""
        return self._thread is threading.current_thread()

    @property
    def url(self) -> str:
        """The socket URL without its query (safe to show)."""
        return _display_url(self._transport.ws_url(self.client_id))

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and return once the server greeted the socket.

        Raises :class:`~comfysync.errors.ComfyConnectionError` (naming the URL, and the HTTP
        status when the handshake was refused) if the socket cannot be opened, or
        :class:`ConnectTimeoutError` (also a ``ComfyTimeoutError``) when ``timeout`` passes
        first. Nothing is left running on failure. A no-op while the thread runs.
        """
        if timeout is None or timeout <= 0:
            raise ValueError("start() needs a positive timeout")
        with self._lifecycle:
            if self.alive:
                return
            self._stop.clear()
            self._ready.clear()
            self._startup_error = None
            self._connect_timeout = float(timeout)
            thread = threading.Thread(
                target=self._run,
                name=f"comfysync-listener-{self.client_id[:8]}",
                daemon=True,
            )
            self._thread = thread
            thread.start()
        greeted = self._ready.wait(timeout)
        error = self._startup_error
        if greeted and error is None:
            return
        self.stop()
        if error is not None:
            raise error
        raise ConnectTimeoutError(
            f"WebSocket {self.url} did not open within {timeout:g} s", url=self.url
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread: close the socket (waking a blocked ``recv``), interrupt a backoff
        wait, join the thread for up to ``timeout`` seconds. Idempotent; callable from a
        callback (then the thread ends after the callback returns, without a join)."""
        if self.owns_current_thread():
            self._signal_stop()  # no lock: a stop() in another thread may be joining us
            return
        with self._lifecycle:
            self._signal_stop()
            thread = self._thread
            if thread is None:
                return
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("listener thread %s did not stop within %g s", thread.name, timeout)
            else:
                self._thread = None

    def _signal_stop(self) -> None:
        self._stop.set()
        with self._ws_lock:
            ws = self._ws
        if ws is not None:
            wake(ws)

    def __repr__(self) -> str:
        state = "connected" if self._connected else ("running" if self.alive else "stopped")
        return f"<Listener {self.url} {state}>"

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:  # a bug here must not die silently, nor leave start() waiting
            logger.exception("listener thread failed")
            if not self._ready.is_set():
                self._startup_error = ComfyConnectionError(
                    f"WebSocket {self.url}: listener failed", url=self.url
                )
        finally:
            self._connected = False
            with self._ws_lock:
                ws, self._ws = self._ws, None
            if ws is not None:
                release(ws)
            self._ready.set()

    def _serve(self) -> None:
        try:
            conn, greeting = self._attempt(self._connect_timeout)
        except _Stopped:
            return
        except AttemptFailed as exc:
            self._startup_error = self._startup_failure(exc)
            return
        self._went_up(greeting, reconnect_attempts=None)
        while True:
            reason, code = self._pump(conn)
            self._connected = False
            release(conn.ws)
            if self._stop.is_set():
                self._sink(Disconnected("closed by the client"))
                return
            logger.warning("WebSocket %s dropped: %s", self.url, reason)
            self._sink(Disconnected(reason, code))
            if not self.reconnect:
                # The socket will not come back: say so, as after failed attempts, so that
                # prompts are followed over HTTP from now on.
                self._sink(ReconnectionFailed(0, f"reconnect is disabled ({reason})"))
                return
            result = self._reconnect()
            if result is None:
                return
            conn, greeting, made = result
            self._went_up(greeting, reconnect_attempts=made)

    def _went_up(self, greeting: Status, reconnect_attempts: Optional[int]) -> None:
        self._policy.greeted()
        self.sid = greeting.sid
        self._connected = True
        reconnected = reconnect_attempts is not None
        if reconnect_attempts is None:
            logger.debug("WebSocket %s connected", self.url)
            self._sink(Connected(greeting.sid))
        else:
            logger.info(
                "WebSocket %s reconnected after %d attempt(s)", self.url, reconnect_attempts
            )
            self._sink(Reconnected(reconnect_attempts, greeting.sid))
        try:
            self._on_socket_ready(reconnected)
        except Exception:
            logger.exception("on_socket_ready callback raised")
        self._ready.set()
        self._dispatch(greeting)

    def _reconnect(self) -> Optional[Tuple[_Connection, Status, int]]:
        """Backoff loop. Returns the new connection, its greeting and the attempts made in
        this outage; None when stopped or out of attempts (then ``ReconnectionFailed`` was
        emitted)."""
        last_error: Optional[str] = None
        made = 0  # attempts in this outage
        while not self._stop.is_set():
            delay = self._policy.next_delay(made)
            if delay is None:
                logger.error("giving up reconnecting to %s after %d attempt(s)", self.url, made)
                self._sink(ReconnectionFailed(made, last_error))
                return None
            made += 1
            self._sink(Reconnecting(made, delay))
            if self._stop.wait(delay):
                return None
            try:
                conn, greeting = self._attempt(self.handshake_timeout)
            except _Stopped:
                return None
            except AttemptFailed as exc:
                last_error = exc.reason
                logger.info("reconnect attempt %d to %s failed: %s", made, self.url, exc.reason)
                continue
            return conn, greeting, made
        return None

    # ------------------------------------------------------------------ one connection

    def _register(self, ws: websocket.WebSocket) -> None:
        with self._ws_lock:
            if self._stop.is_set():
                raise _Stopped()
            self._ws = ws

    def _attempt(self, timeout: float) -> Tuple[_Connection, Status]:
        """Open a socket, announce feature flags, read up to the greeting. Messages that
        come before the greeting (none on ComfyUI) are dispatched as usual."""
        deadline = time.monotonic() + timeout
        ws: Optional[websocket.WebSocket] = None
        try:
            ws = open_websocket(
                self._transport.ws_url(self.client_id),
                self._transport.ws_headers(),
                self._transport.ws_sslopt(),
                timeout,
                register=self._register,
                stopped=self._stop.is_set,
            )
            conn = _Connection(ws)
            ws.send(self._hello)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise websocket.WebSocketTimeoutException("no greeting")
                ws.settimeout(remaining)
                opcode, payload = conn.reader.receive()
                if opcode == OP_CLOSE:
                    raise AttemptFailed("server closed the socket before greeting it")
                event = self._decode(opcode, payload)
                if event is None:
                    continue
                if isinstance(event, Status) and event.sid is not None:
                    return conn, event
                self._dispatch(event)
        except _Stopped:
            raise
        except Exception as exc:
            if ws is None:  # failed inside open_websocket: the socket it registered, if any
                with self._ws_lock:
                    ws = self._ws
            if ws is not None:
                if isinstance(exc, websocket.WebSocketProtocolException):
                    wake(ws, code=PROTOCOL_ERROR)
                self._discard(ws)
            if self._stop.is_set():
                raise _Stopped() from None
            raise classify(exc) from None

    def _discard(self, ws: websocket.WebSocket) -> None:
        release(ws)
        with self._ws_lock:
            if self._ws is ws:
                self._ws = None

    def _pump(self, conn: _Connection) -> Tuple[str, Optional[int]]:
        """Receive until the socket ends; returns (reason, close code)."""
        ws = conn.ws
        receive = conn.reader.receive
        ws.settimeout(self.ping_interval)
        pinged = False
        while True:
            if self._stop.is_set():  # stop() from a callback: no events after it
                return "closed by the client", None
            try:
                opcode, payload = receive()
            except websocket.WebSocketTimeoutException:
                if self._stop.is_set():
                    return "closed by the client", None
                if pinged:
                    return f"no answer to a ping within {self.ping_interval:g} s", None
                try:
                    ws.ping()
                except Exception as exc:
                    return f"ping failed: {describe(exc)}", None
                pinged = True
                continue
            except websocket.WebSocketProtocolException as exc:
                wake(ws, code=PROTOCOL_ERROR)
                return f"WebSocket protocol error: {exc}", None
            except Exception as exc:
                if self._stop.is_set():
                    return "closed by the client", None
                return f"connection lost: {describe(exc)}", None
            pinged = False
            if opcode == OP_TEXT or opcode == OP_BINARY:
                event = self._decode(opcode, payload)
                if event is not None:
                    self._dispatch(event)
            else:  # OP_CLOSE
                code, text = close_reason(payload)
                # Answer the close (echoing its code, RFC 6455 §5.5.1), then hang up.
                wake(ws, code=answer_code(code))
                said = f": {text}" if text else ""
                what = f" ({code}{said})" if code is not None else ""
                return f"server closed the connection{what}", code

    def _decode(self, opcode: int, payload: bytes) -> Optional[Event]:
        try:
            if opcode == OP_TEXT:
                return decode_text(payload)
            return decode_binary(payload)
        except FrameError as exc:
            # The reason names the type/field only; the payload may hold secrets.
            logger.warning("skipped a malformed frame (%d bytes): %s", len(payload), exc)
        except Exception as exc:  # a decoder bug must not end the thread; no payload logged
            logger.error(
                "skipped a frame (%d bytes) the decoder failed on: %s",
                len(payload),
                type(exc).__name__,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
        return None

    def _dispatch(self, event: Event) -> None:
        """Remember the server's feature flags, hand the event to the sink."""
        if isinstance(event, FeatureFlags):
            self.server_features = dict(event.flags)
        self._sink(event)

    def _startup_failure(self, exc: AttemptFailed) -> ComfyConnectionError:
        if exc.timed_out:
            return ConnectTimeoutError(
                f"WebSocket {self.url} did not open within {self._connect_timeout:g} s: "
                f"{exc.reason}",
                url=self.url,
            )
        return ComfyConnectionError(f"WebSocket {self.url}: {exc.reason}", url=self.url)
