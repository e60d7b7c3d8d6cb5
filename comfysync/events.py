"""Typed, immutable events: what the server said on the WebSocket, plus a few client-side events.

Every event has ``.type`` (the wire name, e.g. ``"progress"``), ``.raw`` (the wire message as
a dict, ``None`` for events the client makes up itself) and ``.prompt_id`` (``None`` when the
server does not say which prompt a message belongs to). Events are frozen attrs classes;
list-valued fields are tuples so that an event handed to several callbacks cannot be changed
by one of them. Dict-valued fields (``Executed.output``, ``ExecutionError.current_inputs``…)
are the server's dicts: treat them as read-only.

Subscribe with ``api.on(key, callback)`` where ``key`` is a wire name (``"progress"``), a class
(``events.Progress``) or ``"*"`` / ``"all"`` for everything; :func:`normalize_key` is the single
place that turns such a key into the name the dispatcher uses.

The decoding of wire frames into these classes lives in ``comfysync._ws.wire`` (pure functions).
"""

from __future__ import annotations

import io
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Dict,
    FrozenSet,
    Mapping,
    Optional,
    Tuple,
    Type,
    Union,
)

from attrs import define, field

from ._display import image_bundle
from ._suggest import suggestions

if TYPE_CHECKING:  # Pillow is optional (the ``pil`` extra)
    from PIL.Image import Image

__all__ = [
    "Event",
    "Status",
    "ExecutionStart",
    "ExecutionCached",
    "Executing",
    "Progress",
    "NodeProgress",
    "ProgressState",
    "Executed",
    "ExecutionSuccess",
    "ExecutionError",
    "ExecutionInterrupted",
    "FeatureFlags",
    "Logs",
    "Preview",
    "ProgressText",
    "Connected",
    "Disconnected",
    "Reconnecting",
    "Reconnected",
    "ReconnectionFailed",
    "AuthSuccess",
    "AuthError",
    "UnknownEvent",
    "WIRE_NAMES",
    "CLIENT_EVENTS",
    "ALL",
    "EventKey",
    "normalize_key",
]

#: The key that matches every event (``"all"`` is accepted as a synonym).
ALL = "*"


def _short_bytes(data: bytes) -> str:
    return f"<{len(data)} bytes>"


@define(frozen=True)
class Event:
    """Base class of every event. Subscribing to ``Event`` itself means "everything"."""

    #: Wire name of the class; :class:`UnknownEvent` carries its own per instance.
    TYPE: ClassVar[str] = ALL

    #: The message exactly as decoded from the wire (``None`` for client-side events).
    raw: Optional[Dict[str, Any]] = field(default=None, kw_only=True, repr=False, eq=False)

    @property
    def type(self) -> str:
        """The wire name (``"progress"``, ``"b_preview"``, ``"reconnecting"``…)."""
        return self.TYPE

    @property
    def prompt_id(self) -> Optional[str]:
        """The prompt this event belongs to; ``None`` when the server does not say."""
        return None


# --------------------------------------------------------------------------- server: JSON


@define(frozen=True)
class Status(Event):
    """Queue state: sent on connect (with ``sid``, the effective client id) and whenever the
    queue changes. ``queue_remaining`` counts pending plus running prompts."""

    TYPE: ClassVar[str] = "status"
    queue_remaining: int
    sid: Optional[str] = None


@define(frozen=True)
class ExecutionStart(Event):
    """The server started executing a prompt. ``timestamp``: ms since the epoch."""

    TYPE: ClassVar[str] = "execution_start"
    prompt_id: Optional[str] = None
    timestamp: Optional[int] = None


@define(frozen=True)
class ExecutionCached(Event):
    """Ids of the prompt's nodes served from cache (they will not run)."""

    TYPE: ClassVar[str] = "execution_cached"
    nodes: Tuple[str, ...] = ()
    prompt_id: Optional[str] = None
    timestamp: Optional[int] = None


@define(frozen=True)
class Executing(Event):
    """A node is about to run; ``node is None`` means the prompt finished (success, error or
    interrupt). After a reconnect mid-run the server repeats the current node without
    ``prompt_id``."""

    TYPE: ClassVar[str] = "executing"
    node: Optional[str] = None
    display_node: Optional[str] = None
    prompt_id: Optional[str] = None


@define(frozen=True)
class Progress(Event):
    """Legacy progress of one node (``value`` out of ``max``)."""

    TYPE: ClassVar[str] = "progress"
    value: float
    max: float
    node: Optional[str] = None
    prompt_id: Optional[str] = None


@define(frozen=True)
class NodeProgress:
    """One node's entry in :class:`ProgressState`. ``state``: ``"running"`` or ``"finished"``
    (``"error"`` exists in the server's enum but is not sent)."""

    value: float
    max: float
    state: str
    node_id: Optional[str] = None
    display_node_id: Optional[str] = None
    parent_node_id: Optional[str] = None
    real_node_id: Optional[str] = None


@define(frozen=True)
class ProgressState(Event):
    """Snapshot of every non-pending node of the prompt so far (node id → progress)."""

    TYPE: ClassVar[str] = "progress_state"
    nodes: Dict[str, NodeProgress] = field(factory=dict)
    prompt_id: Optional[str] = None


@define(frozen=True)
class Executed(Event):
    """A node produced UI output (``output`` maps output kind → list, e.g. ``images``).
    Also sent for output nodes served from cache, then ``output`` may be ``None``."""

    TYPE: ClassVar[str] = "executed"
    node: Optional[str] = None
    display_node: Optional[str] = None
    output: Optional[Dict[str, Any]] = None
    prompt_id: Optional[str] = None


@define(frozen=True)
class ExecutionSuccess(Event):
    """The prompt finished successfully (its history entry is written just after)."""

    TYPE: ClassVar[str] = "execution_success"
    prompt_id: Optional[str] = None
    timestamp: Optional[int] = None


@define(frozen=True)
class ExecutionError(Event):
    """A node raised. ``exception_message`` keeps the server's trailing newline; ``executed``
    lists the nodes that completed in this run. Without ``timestamp`` (exception type
    ``ExecutionBlocked``) the error is not fatal and execution goes on."""

    TYPE: ClassVar[str] = "execution_error"
    node_id: Optional[str] = None
    node_type: Optional[str] = None
    exception_type: Optional[str] = None
    exception_message: str = ""
    traceback: Tuple[str, ...] = ()
    executed: Tuple[str, ...] = ()
    current_inputs: Any = None
    current_outputs: Any = None
    prompt_id: Optional[str] = None
    timestamp: Optional[int] = None


@define(frozen=True)
class ExecutionInterrupted(Event):
    """The prompt was interrupted while ``node_id`` ran."""

    TYPE: ClassVar[str] = "execution_interrupted"
    node_id: Optional[str] = None
    node_type: Optional[str] = None
    executed: Tuple[str, ...] = ()
    prompt_id: Optional[str] = None
    timestamp: Optional[int] = None


@define(frozen=True)
class FeatureFlags(Event):
    """The server's answer to our ``feature_flags`` message (e.g. ``max_upload_size``)."""

    TYPE: ClassVar[str] = "feature_flags"
    flags: Dict[str, Any] = field(factory=dict)


@define(frozen=True)
class Logs(Event):
    """Server log lines (only sent to clients subscribed through ``/internal/logs``)."""

    TYPE: ClassVar[str] = "logs"
    entries: Tuple[Any, ...] = ()
    size: Any = None


# --------------------------------------------------------------------------- server: binary


@define(frozen=True)
class Preview(Event):
    """A preview image (binary frame type 4 with metadata, or legacy type 1).

    Type-1 frames carry no ids: the client attributes them to the prompt and node of the
    most recent ``executing``/``progress`` it saw (best effort — they may be broadcasts of a
    prompt submitted without client id). ``event_type`` says which flavour arrived.
    """

    TYPE: ClassVar[str] = "b_preview"
    image: bytes = field(repr=_short_bytes)
    mime_type: str = "image/jpeg"
    node_id: Optional[str] = None
    prompt_id: Optional[str] = None
    display_node_id: Optional[str] = None
    parent_node_id: Optional[str] = None
    real_node_id: Optional[str] = None
    event_type: int = 4

    def to_pil(self) -> Image:
        """The preview decoded as a ``PIL.Image.Image`` (needs Pillow: ``comfysync[pil]``)."""
        try:
            from PIL import Image as PILImage
        except ImportError:
            raise ImportError(
                'Preview.to_pil() needs Pillow: pip install "comfysync[pil]"'
            ) from None
        image = PILImage.open(io.BytesIO(self.image))
        image.load()
        return image

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Dict[str, Any]:
        """Notebook display: the image itself (its repr as the plain-text fallback)."""
        return image_bundle(self.image, repr(self))


@define(frozen=True)
class ProgressText(Event):
    """Text a node shows on itself (binary frame type 3). Usually a broadcast; ``prompt_id``
    is attributed like a type-1 preview when ``node_id`` is the node currently running."""

    TYPE: ClassVar[str] = "b_text"
    text: str
    node_id: Optional[str] = None
    prompt_id: Optional[str] = None


# --------------------------------------------------------------------------- client side


@define(frozen=True)
class Connected(Event):
    """The listener's socket is up and the server greeted it (``sid``: effective client id)."""

    TYPE: ClassVar[str] = "connected"
    sid: Optional[str] = None


@define(frozen=True)
class Disconnected(Event):
    """The socket went away (``code``: WebSocket close code when the server sent one)."""

    TYPE: ClassVar[str] = "disconnected"
    reason: str = ""
    code: Optional[int] = None


@define(frozen=True)
class Reconnecting(Event):
    """Reconnect attempt number ``attempt`` (1-based) starts after ``delay`` seconds."""

    TYPE: ClassVar[str] = "reconnecting"
    attempt: int
    delay: float


@define(frozen=True)
class Reconnected(Event):
    """The socket is back (same client id) after ``attempt`` attempts."""

    TYPE: ClassVar[str] = "reconnected"
    attempt: int
    sid: Optional[str] = None


@define(frozen=True)
class ReconnectionFailed(Event):
    """The listener gave up after ``attempts`` attempts (0 when ``reconnect=False``); it does
    not try again, and prompts are followed by HTTP polling from then on."""

    TYPE: ClassVar[str] = "reconnection_failed"
    attempts: int
    last_error: Optional[str] = None


@define(frozen=True)
class AuthSuccess(Event):
    """``connect()`` made one authenticated request with the configured credentials and it
    was accepted."""

    TYPE: ClassVar[str] = "auth_success"


@define(frozen=True)
class AuthError(Event):
    """``connect()`` made one authenticated request and it was refused with ``status``."""

    TYPE: ClassVar[str] = "auth_error"
    status: int


@define(frozen=True)
class UnknownEvent(Event):
    """A message comfysync has no class for (custom nodes, extensions, newer servers).
    ``type`` is its wire name (``"binary:<n>"`` for an unknown binary frame type ``n``),
    ``data`` its payload. Subscribe by name (``api.on("crystools.monitor", cb)``) or to
    ``UnknownEvent`` for all of them."""

    TYPE: ClassVar[str] = "unknown"
    type: str
    data: Any = None

    @property
    def prompt_id(self) -> Optional[str]:
        data = self.data
        if isinstance(data, dict):
            pid = data.get("prompt_id")
            if isinstance(pid, str):
                return pid
        return None


_SERVER_CLASSES: Tuple[Type[Event], ...] = (
    Status,
    ExecutionStart,
    ExecutionCached,
    Executing,
    Progress,
    ProgressState,
    Executed,
    ExecutionSuccess,
    ExecutionError,
    ExecutionInterrupted,
    FeatureFlags,
    Logs,
    Preview,
    ProgressText,
)

_CLIENT_CLASSES: Tuple[Type[Event], ...] = (
    Connected,
    Disconnected,
    Reconnecting,
    Reconnected,
    ReconnectionFailed,
    AuthSuccess,
    AuthError,
)

#: Wire name → class for every message the server sends that comfysync knows.
WIRE_NAMES: Mapping[str, Type[Event]] = {cls.TYPE: cls for cls in _SERVER_CLASSES}

#: Name → class for the events the client emits itself (socket life cycle, auth).
CLIENT_EVENTS: Mapping[str, Type[Event]] = {cls.TYPE: cls for cls in _CLIENT_CLASSES}

#: Other names ``on()`` accepts for an event key. Layers above add theirs with
#: :func:`add_key_alias` (the comfy-api-client names ``"all"`` and ``"execution_complete"``
#: are added by ``comfysync._compat``, which keeps that whole shape in one module).
_ALIASES: Dict[str, str] = {
    "b_preview_with_metadata": Preview.TYPE,  # the official frontend's name for type 4
    "progress_text": ProgressText.TYPE,  # the official frontend's name for type 3
}


def add_key_alias(alias: str, key: str) -> None:
    """Make ``on(alias)`` (and every other event-key argument) mean ``on(key)``. Called at
    import time by the layers that define extra names, before any subscription exists."""
    if not alias or not key:
        raise ValueError("an event-key alias and its key must be non-empty names")
    _ALIASES[alias] = key


def _known_names() -> FrozenSet[str]:
    """Every name ``on()`` knows: wire names, client events, aliases, ``"*"`` and
    ``UnknownEvent``'s key."""
    return frozenset({*WIRE_NAMES, *CLIENT_EVENTS, *_ALIASES, ALL, UnknownEvent.TYPE})

#: What ``on()`` accepts: a wire name, an alias, ``"*"``, or an event class.
EventKey = Union[str, Type[Event]]


def normalize_key(key: EventKey) -> str:
    """The dispatcher's name for ``key``: aliases resolved, classes mapped to their wire name,
    :class:`Event` itself to ``"*"``. Unknown names are kept (custom server messages)."""
    if isinstance(key, str):
        if not key:
            raise ValueError("event name must not be empty")
        return _ALIASES.get(key, key)
    if isinstance(key, type) and issubclass(key, Event):
        return key.TYPE
    raise TypeError(f"event key must be a name or an Event subclass, not {type(key).__name__}")


def closest_name(name: str) -> Optional[str]:
    """The known event name ``name`` is probably a typo of (``"progres"`` → ``"progress"``),
    or None when ``name`` is known or like none of them (a custom node's message such as
    ``"crystools.monitor"``). ``on()`` uses it to warn; unknown names stay allowed."""
    close = suggestions(name, sorted(_known_names()), n=1)
    return close[0] if close else None
