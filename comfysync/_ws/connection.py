"""One WebSocket's life outside the read loop: opening it (the handshake and its redirects),
what a failed attempt means, and closing it.

websocket-client performs the HTTP upgrade. It would follow a 3xx answer to any URL with the
same header list, handing the ``Authorization`` header of ``auth=``/``token=`` and every
``headers=`` value to whatever origin the ``Location`` names. So comfysync asks it not to
follow (``redirect_limit=0``) and decides here: a redirect within the origin (scheme, host
and port) of the socket URL is followed, up to :data:`MAX_REDIRECTS` hops; a redirect to
another origin is refused before anything is sent there, with a reason naming both origins
(never the paths or queries, which may carry signed tokens).

Every failure of an attempt becomes :class:`AttemptFailed`, with a short, credential-free
reason (websocket-client's own message for a refused handshake includes response headers and
body, so it is not reused) and the HTTP status when the server refused the upgrade.

Closing answers the server's close frame with its own code (RFC 6455 §5.5.1) or sends 1002
after a protocol error, and wakes a thread blocked on the socket (also mid-handshake) by
shutting the socket down without closing the descriptor, which stays its owner's to release.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urljoin

import websocket

from .._http.urls import origin_of

__all__ = [
    "AttemptFailed",
    "open_websocket",
    "classify",
    "describe",
    "wake",
    "release",
    "close_reason",
    "answer_code",
    "MAX_REDIRECTS",
    "PROTOCOL_ERROR",
]

#: Same-origin redirects followed before an attempt is given up.
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_WS_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
#: Close code for a broken frame stream (RFC 6455 §7.4.1).
PROTOCOL_ERROR = 1002


class AttemptFailed(Exception):
    """One connection attempt failed. ``status`` is the HTTP status of a refused handshake;
    ``timed_out`` tells a timeout from a refusal."""

    def __init__(self, reason: str, status: Optional[int] = None, timed_out: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.timed_out = timed_out


def _show(url: str) -> str:
    """The origin of ``url`` as a socket origin (``ws://host:port``) for messages; whether two
    URLs share an origin is decided by :func:`~comfysync._http.urls.origin_of` alone."""
    scheme, sep, rest = origin_of(url).partition("://")
    return _WS_SCHEMES.get(scheme, scheme) + sep + rest


def _redirect_target(url: str, status: int, location: Optional[str]) -> str:
    """The URL a same-origin redirect leads to; :class:`AttemptFailed` for any other."""
    if not location:
        raise AttemptFailed(f"handshake redirected (HTTP {status}) without a Location")
    target = urljoin(url, location.strip())
    scheme, _, rest = target.partition(":")
    target = _WS_SCHEMES.get(scheme.lower(), scheme) + ":" + rest
    if origin_of(url) != origin_of(target):
        raise AttemptFailed(
            f"handshake redirected (HTTP {status}) from {_show(url)} to another origin, "
            f"{_show(target)}: refused, so that no credential is sent there"
        )
    return target


def open_websocket(
    url: str,
    headers: List[str],
    sslopt: Dict[str, Any],
    timeout: float,
    register: Callable[[websocket.WebSocket], None],
    stopped: Callable[[], bool],
) -> websocket.WebSocket:
    """A connected ``websocket.WebSocket`` for ``url`` (redirects handled as the module
    docstring says), within ``timeout`` seconds overall. ``register`` receives the socket
    object before anything blocks, so that another thread can shut it down; ``stopped`` is
    checked between hops. Raises :class:`AttemptFailed`, or whatever websocket-client or
    the socket raised (for :func:`classify`)."""
    ws = websocket.WebSocket(
        sslopt=sslopt,
        skip_utf8_validation=True,  # text is validated strictly by the decoder
        enable_multithread=True,  # pongs (reading thread) and close (stop()) may race
    )
    register(ws)
    deadline = time.monotonic() + timeout
    connect: Callable[..., None] = ws.connect  # untyped in websocket-client
    for _ in range(MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise websocket.WebSocketTimeoutException("handshake timed out")
        ws.handshake_response = None
        try:
            connect(
                url,
                header=headers,
                timeout=remaining,
                suppress_origin=True,  # not a browser; a proxied Origin can trip ComfyUI's check
                redirect_limit=0,  # redirects are decided here, not followed blindly
            )
            return ws
        except websocket.WebSocketBadStatusException:
            raise
        except websocket.WebSocketException:
            response = ws.handshake_response
            if response is None or response.status not in _REDIRECTS:
                raise
            url = _redirect_target(url, response.status, response.headers.get("location"))
        if stopped():
            raise AttemptFailed("stopped")
    raise AttemptFailed(f"handshake redirected more than {MAX_REDIRECTS} times")


def describe(exc: BaseException) -> str:
    """A short, credential-free description of a socket-level failure."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException) -> AttemptFailed:
    """Map websocket-client and socket errors of one attempt to a reason (and HTTP status)."""
    if isinstance(exc, AttemptFailed):
        return exc
    if isinstance(exc, websocket.WebSocketBadStatusException):
        status = exc.status_code
        hint = " (check auth/token and headers)" if status in (401, 403) else ""
        return AttemptFailed(f"handshake refused with HTTP {status}{hint}", status=status)
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        return AttemptFailed("timed out", timed_out=True)
    if isinstance(exc, ConnectionRefusedError):
        return AttemptFailed("connection refused")
    if isinstance(exc, websocket.WebSocketConnectionClosedException):
        return AttemptFailed("server closed the socket before greeting it")
    if isinstance(exc, websocket.WebSocketProtocolException):
        return AttemptFailed(f"WebSocket protocol error: {exc}")
    return AttemptFailed(describe(exc))


# --------------------------------------------------------------------------- closing


def wake(ws: websocket.WebSocket, *, polite: bool = True, code: int = 1000) -> None:
    """Wake any thread blocked on ``ws`` (also mid-handshake) without closing the fd, which
    stays the owner thread's to release. ``polite``: send a close frame with ``code`` first,
    once (websocket-client marks the socket closed when it sends one)."""
    sock = ws.sock
    if polite and ws.connected:
        try:
            ws.send_close(code)
        except Exception:
            pass
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def release(ws: websocket.WebSocket) -> None:
    """Close frame (best effort), then release the descriptor. Never blocks for long."""
    wake(ws)
    shutdown: Callable[[], None] = ws.shutdown  # untyped in websocket-client
    try:
        shutdown()
    except Exception:  # already closed
        pass


def close_reason(payload: bytes) -> Tuple[Optional[int], str]:
    """The status code and reason text of a close frame (RFC 6455 §5.5.1), the text made
    printable and short: it goes into ``Disconnected.reason`` and the log."""
    if len(payload) < 2:
        return None, ""
    code: int = struct.unpack("!H", payload[:2])[0]
    text = payload[2:125].decode("utf-8", errors="replace")
    return code, "".join(c if c.isprintable() else " " for c in text).strip()


def answer_code(code: Optional[int]) -> int:
    """The code to answer a close with: the server's own, unless it is one that must never
    be sent (1005, 1006, 1015) or outside the assignable range."""
    if code is None or not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015):
        return 1000
    return code
