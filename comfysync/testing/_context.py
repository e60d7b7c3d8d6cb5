"""The seam between FakeComfyUI's executor and the nodes it runs.

ComfyUI nodes report progress through ``comfy.utils.ProgressBar`` and talk to the server
through ``PromptServer.instance``: process-wide globals. FakeComfyUI runs several servers in one
process (tests start three for the pool), so there is no global: while a node function runs,
the executor binds an :class:`ExecutionContext` to a :mod:`contextvars` variable, and the
helpers below (:class:`ProgressBar`, :func:`current_context`) find it there. A node written
for FakeComfyUI therefore looks like a ComfyUI node::

    class Slow:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"steps": ("INT", {"default": 3, "min": 1, "max": 100})}}
        RETURN_TYPES = ()
        FUNCTION = "go"
        OUTPUT_NODE = True

        def go(self, steps):
            bar = ProgressBar(steps)
            for i in range(steps):
                bar.update_absolute(i + 1)          # progress events; interruption point
            return {"ui": {"text": [f"{steps} steps"]}}
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol, Tuple

if TYPE_CHECKING:  # Pillow is an optional dependency (the ``testing`` extra)
    from PIL.Image import Image

#: ``(format, image, max_size)`` as ComfyUI's ProgressBar takes it: format ``"JPEG"`` or
#: ``"PNG"``; ``max_size`` None = send unscaled, an int = fit inside max_size×max_size.
PreviewTuple = Tuple[str, "Image", Optional[int]]


class NodeInterrupted(Exception):
    """Raised inside a node when the server's interrupt flag fires (ComfyUI's
    ``InterruptProcessingException``). The executor turns it into ``execution_interrupted``."""


class ExecutionContext(Protocol):
    """What a running node may ask of the server. Implemented by the executor."""

    prompt_id: str
    node_id: str  #: execution id of the running node
    display_node_id: str
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    preview_size: int  #: the server's ``--preview-size`` (max_size for sampler previews)
    preview_method: str  #: "none" | "auto" | "latent2rgb" | "taesd"

    def progress(
        self, value: float, max: float, preview: Optional[PreviewTuple] = None
    ) -> None:
        """Emit ``progress_state``, [type-4 preview], ``progress``, [type-1 preview] exactly as
        ComfyUI's global progress hook does with the real routing. Raises :class:`NodeInterrupted`
        when the interrupt flag is set (this is an interruption point)."""

    def check_interrupted(self) -> None:
        """Raise :class:`NodeInterrupted` (and clear the flag) when an interrupt is pending."""

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early and raising :class:`NodeInterrupted` on interrupt."""

    def send_text(self, text: str, *, sid: Optional[str] = None) -> None:
        """A binary TEXT frame (type 3) for this node: broadcast unless ``sid`` is given."""

    def send_image_frame(self, image_format: str, image: Image) -> None:
        """A type-1 frame with the full-size image (``SaveImageWebsocket``): format ``"PNG"``
        (format code 2) or ``"JPEG"`` (1), to the prompt's client or broadcast without one."""

    def send_json(self, event_type: str, data: Any, *, sid: Optional[str] = None) -> None:
        """A custom JSON message ``{"type": event_type, "data": data}`` (``send_sync``)."""


_current: contextvars.ContextVar[Optional[ExecutionContext]] = contextvars.ContextVar(
    "comfysync_fake_execution_context", default=None
)


def current_context() -> ExecutionContext:
    """The context of the node that is running on this thread. Raises ``RuntimeError`` when
    called outside a node function."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("no FakeComfyUI node is executing on this thread")
    return ctx


def bind_context(ctx: Optional[ExecutionContext]) -> contextvars.Token[Optional[ExecutionContext]]:
    """Executor side: make ``ctx`` current for the node about to run. Reset with the token."""
    return _current.set(ctx)


def unbind_context(token: contextvars.Token[Optional[ExecutionContext]]) -> None:
    _current.reset(token)


class ProgressBar:
    """ComfyUI's ``comfy.utils.ProgressBar``, bound to the current node's context at creation
    (create it inside the node function, as in ComfyUI)."""

    def __init__(self, total: float, node_id: Optional[str] = None) -> None:
        self.total = total
        self.current: float = 0
        self._ctx = current_context()
        self.node_id = node_id or self._ctx.node_id

    def update_absolute(
        self, value: float, total: Optional[float] = None, preview: Optional[PreviewTuple] = None
    ) -> None:
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        self._ctx.progress(self.current, self.total, preview)

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)
