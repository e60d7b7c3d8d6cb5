"""``ComfyApi``: the client object users create.

It glues the layers together: the :class:`~comfysync._transport.HttpTransport` (one HTTP
session with the credentials), the REST routes of :class:`~comfysync._rest.RestMethods`, and —
added by the listener and tracking layers — the WebSocket listener and the prompt tracker.
This module holds only construction, identity and lifetime; each capability lives in its own
module.
"""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType
from typing import Mapping, Optional, Tuple, Type

from ._rest import RestMethods
from ._transport import HttpTransport, TimeoutArg, VerifyArg

__all__ = ["ComfyApi"]

log = logging.getLogger("comfysync.client")

_TRACKERS = ("websocket", "http")


class ComfyApi(RestMethods):
    """A synchronous client for one ComfyUI server.

    ``url`` is ``"host"``, ``"host:port"`` or ``"http(s)://host[:port][/prefix]"`` (a bare host
    means port 8188; a path prefix — a reverse proxy at ``/comfy/`` — is kept on every route
    and on ``/ws``). ``auth=(user, password)`` sends HTTP Basic, ``token=`` a Bearer token,
    ``headers=`` extra headers; all three also go on the WebSocket handshake. ``timeout`` is the
    seconds allowed for each REST call (or ``(connect, read)``), ``verify`` the TLS check
    (``True``, ``False`` or a CA bundle path). ``client_id`` (default: a fresh ``uuid4().hex``)
    is sent with every prompt so this client receives its events.

    The REST methods work at once, without ``connect()``. ``close()`` (or leaving a ``with``
    block) releases everything; it is idempotent. ``repr`` never shows credentials.
    """

    def __init__(
        self,
        url: str = "127.0.0.1:8188",
        *,
        client_id: Optional[str] = None,
        auth: Optional[Tuple[str, str]] = None,
        token: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutArg = 30.0,
        verify: VerifyArg = True,
        reconnect: bool = True,
        tracker: str = "websocket",
    ) -> None:
        if tracker not in _TRACKERS:
            raise ValueError(f"tracker must be one of {_TRACKERS}, not {tracker!r}")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValueError("client_id must be a non-empty string")
        self.client_id: str = client_id if client_id is not None else uuid.uuid4().hex
        self._transport = HttpTransport(
            url, auth=auth, token=token, headers=headers, timeout=timeout, verify=verify
        )
        self.reconnect = bool(reconnect)
        self.tracker_mode = tracker
        self._close_lock = threading.Lock()
        self._closed = False
        log.debug("created %r", self)

    @property
    def url(self) -> str:
        """The server's base URL, without credentials (``http://host:8188[/prefix]``)."""
        return self._transport.base_url

    @property
    def closed(self) -> bool:
        return self._closed

    def _state(self) -> str:
        return "closed" if self._closed else "open"

    def __repr__(self) -> str:
        auth = self._transport.auth_kind
        return (
            f"<ComfyApi {self.url} client_id={self.client_id}"
            f"{' auth=' + auth if auth else ''} {self._state()}>"
        )

    def close(self) -> None:
        """Release the HTTP session (and, once added, the listener and tracker threads).
        Idempotent; REST calls afterwards raise :class:`~comfysync.ComfyConnectionError`."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._transport.close()
        log.debug("closed %r", self)

    def __enter__(self) -> ComfyApi:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()
