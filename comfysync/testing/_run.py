"""One prompt's execution as the clients see it: the messages it sends, in order and with
the real routing, and the context its running node gets.

:class:`PromptRun` keeps what ComfyUI's executor and progress registry keep for one prompt
(the ``messages`` written to history, each node's progress state) and emits every message
of it: to the prompt's client when it has one, else broadcast only what the real server
broadcasts. A run whose server restarted or stopped meanwhile raises :class:`Aborted` at its
next message, so nothing of it reaches a client or the history. :class:`NodeContext` is the
:class:`~._context.ExecutionContext` bound while a node function runs.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from attrs import define

from ._context import NodeInterrupted, PreviewTuple
from ._files import Workdirs
from ._hub import BIN_PREVIEW, BIN_PREVIEW_WITH_METADATA, BIN_TEXT, Hub, binary_frame
from ._queue import Taken


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_image(image_format: str, image: Any, max_size: Optional[int]) -> bytes:
    """Encode a PIL image as the server does for previews (quality 95 / compress level 1),
    first fitting it inside ``max_size``² (which also upscales)."""
    from PIL import Image, ImageOps

    if max_size is not None:
        bilinear = getattr(Image, "Resampling", Image).BILINEAR  # Pillow < 9.1: Image.BILINEAR
        image = ImageOps.contain(image, (max_size, max_size), bilinear)
    if image_format.upper() in ("JPEG", "JPG") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=image_format, quality=95, compress_level=1)
    return buf.getvalue()


class Aborted(Exception):
    """The server restarted (or stopped) while this prompt ran: drop it silently."""


class Interrupts:
    """The server's interrupt flag: set by ``POST /interrupt`` (or a restart), checked by
    the running node at its interruption points."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        self.event.clear()

    def check(self) -> None:
        """Raise :class:`NodeInterrupted` (and clear the flag) when an interrupt is pending."""
        if self.event.is_set():
            self.event.clear()
            raise NodeInterrupted("Processing interrupted")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early and raising :class:`NodeInterrupted` on interrupt."""
        if self.event.wait(max(0.0, seconds)):
            self.check()


@define(frozen=True)
class RunSettings:
    """What the server's options say about running nodes."""

    dirs: Workdirs
    preview_method: str
    preview_size: int


class PromptRun:
    """The state of one prompt's execution (ComfyUI's executor + progress registry).
    ``alive()`` turns False when the server restarted or stopped since the prompt was
    taken."""

    def __init__(
        self,
        taken: Taken,
        *,
        hub: Callable[[], Hub],
        alive: Callable[[], bool],
        interrupts: Interrupts,
        settings: RunSettings,
    ) -> None:
        self.taken = taken
        self.hub = hub
        self.alive = alive
        self.interrupts = interrupts
        self.settings = settings
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
    def send(self, event: str, data: Any, sid: Optional[str]) -> None:
        if not self.alive():
            raise Aborted()
        self.hub().send_sync(event, data, sid)

    def send_bytes(self, payload: bytes, sid: Optional[str]) -> None:
        if not self.alive():
            raise Aborted()
        self.hub().send_bytes_sync(payload, sid)

    def add_message(self, event: str, data: Dict[str, Any], broadcast: bool) -> None:
        """A status message: kept for history, sent to the client (or broadcast)."""
        data = {**data, "timestamp": now_ms()}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.send(event, data, self.client_id)

    def send_executed(self, node_id: str, output: Any) -> None:
        """``executed`` of a node with UI output (only to the prompt's own client)."""
        if self.client_id is not None:
            self.send(
                "executed",
                {"node": node_id, "display_node": node_id, "output": output,
                 "prompt_id": self.prompt_id},
                self.client_id,
            )

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
        """ComfyUI's global progress hook: interruption point, ``progress_state``,
        [type-4], ``progress``, [type-1]."""
        self.interrupts.check()
        self._entry(node_id).update(state="running", value=value, max=max_value)
        self._progress_state()
        metadata_client = self.hub().supports_preview_metadata(self.client_id)
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

    def __init__(self, run: PromptRun, node_id: str) -> None:
        self._run = run
        self.prompt_id = run.prompt_id
        self.node_id = node_id
        self.display_node_id = node_id
        settings = run.settings
        self.input_dir: Path = settings.dirs.input
        self.output_dir: Path = settings.dirs.output
        self.temp_dir: Path = settings.dirs.temp
        self.preview_size: int = settings.preview_size
        self.preview_method: str = settings.preview_method
        self.client_id: Optional[str] = run.client_id
        self.extra_data: Dict[str, Any] = run.extra_data

    def progress(self, value: float, max: float, preview: Optional[PreviewTuple] = None) -> None:
        self._run.progress_hook(self.node_id, value, max, preview)

    def check_interrupted(self) -> None:
        self._run.interrupts.check()

    def sleep(self, seconds: float) -> None:
        self._run.interrupts.sleep(seconds)

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
