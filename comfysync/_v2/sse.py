"""A job's live event stream: server-sent events decoded, then mapped to comfysync's events.

Pure functions and one small stateful decoder, no I/O: :class:`SseDecoder` turns the lines of a
``text/event-stream`` body into ``(name, data)`` frames, and :class:`EventMapper` turns the
frames of one job into the same typed events a native server's WebSocket produces
(:class:`~comfysync.events.Progress`, :class:`~comfysync.events.Preview`,
:class:`~comfysync.events.Executed`…), each carrying the job id as ``prompt_id``, so
``on_progress``, ``job.on(...)`` and the CLI's progress bar work unchanged.

The v2 stream is live-only (no event ids, no replay after a reconnect) and never
authoritative: its terminal ``status`` (or ``error``) frame is only a hint that the job resource
is worth reading now.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

from .. import events as ev
from .models import TERMINAL, V2Output, V2Progress

__all__ = ["EventMapper", "Frame", "SseDecoder", "file_item"]

log = logging.getLogger("comfysync.v2")

#: One decoded frame: the event name (``message`` when the server names none) and its data.
Frame = Tuple[str, Dict[str, Any]]


class SseDecoder:
    """Incremental ``text/event-stream`` parser: :meth:`feed` one line (without its line
    break), get back the frames it completed (a blank line ends a frame). Comment lines
    (heartbeats) are skipped; ``id`` and ``retry`` are ignored (the stream has no replay)."""

    def __init__(self) -> None:
        self._name: Optional[str] = None
        self._data: List[str] = []

    def feed(self, line: str) -> List[Frame]:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        return []

    def _dispatch(self) -> List[Frame]:
        name, lines = self._name or "message", self._data
        self._name, self._data = None, []
        if not lines:
            return []
        text = "\n".join(lines)
        try:
            data = json.loads(text)
        except ValueError:
            log.debug("SSE %s frame with data that is not JSON: %.80r", name, text)
            data = {"raw": text}
        return [(name, data if isinstance(data, dict) else {"value": data})]


class EventMapper:
    """The events one job's frames stand for. Keeps the little state needed to make the
    native sequence: ``execution_start`` once, an ``executing`` when the running node
    changes. :attr:`terminal` is set once a frame says the job ended (a hint only)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.terminal: Optional[str] = None
        self._started = False
        self._node: Optional[str] = None

    def map(self, name: str, data: Dict[str, Any]) -> List[ev.Event]:
        """The typed events of one frame (often none); a malformed frame is logged and
        dropped — the stream is a live enhancement, never worth failing a job over."""
        try:
            return self._map(name, data)
        except (TypeError, ValueError) as exc:
            log.debug("job %s: dropping malformed SSE %s frame: %s", self.job_id, name, exc)
            return []

    def _map(self, name: str, data: Dict[str, Any]) -> List[ev.Event]:
        raw = {"type": name, "data": data}
        if name == "status":
            status = data.get("status")
            if status in TERMINAL:
                self.terminal = str(status)
                return []
            if status in ("running", "canceling"):
                return self._start(raw)
            return []
        if name == "error":  # a terminal error frame: the job resource says what happened
            self.terminal = "error"
            return []
        if name == "progress":
            progress = V2Progress.from_wire(data)
            found = self._start(raw)
            if progress.current_node is not None and progress.current_node != self._node:
                self._node = progress.current_node
                found.append(ev.Executing(node=self._node, display_node=self._node,
                                          prompt_id=self.job_id, raw=raw))
            if progress.step is not None and progress.steps:
                value, maximum = float(progress.step), float(progress.steps)
            else:
                value, maximum = progress.value, 1.0
            found.append(ev.Progress(value=value, max=maximum, node=progress.current_node or None,
                                     prompt_id=self.job_id, raw=raw))
            return found
        if name == "preview":
            image = base64.b64decode(str(data.get("data_base64") or ""), validate=True)
            node = data.get("node_id")
            return [ev.Preview(image=image,
                               mime_type=str(data.get("content_type") or "image/jpeg"),
                               node_id=str(node) if node else self._node,
                               prompt_id=self.job_id, raw=raw)]
        if name == "output":
            out = V2Output.from_wire(data)
            return [ev.Executed(node=out.node_id, display_node=out.node_id,
                                output={out.output_key: [file_item(out)]},
                                prompt_id=self.job_id, raw=raw)]
        return [ev.UnknownEvent(type=f"v2.{name}", data=data, raw=raw)]

    def _start(self, raw: Dict[str, Any]) -> List[ev.Event]:
        if self._started:
            return []
        self._started = True
        return [ev.ExecutionStart(prompt_id=self.job_id, raw=raw)]


def file_item(out: V2Output) -> Dict[str, Any]:
    """A v2 output as the file item a native node output lists (``filename``, ``subfolder``,
    ``type``), plus what only v2 knows (``url``, ``asset_id``, ``content_type``…)."""
    item: Dict[str, Any] = {"filename": out.name, "subfolder": "", "type": "output",
                            "url": out.url, "v2_kind": out.kind}
    if out.id:
        item["asset_id"] = out.id
    if out.content_type:
        item["content_type"] = out.content_type
    if out.size_bytes:
        item["size_bytes"] = out.size_bytes
    return item

