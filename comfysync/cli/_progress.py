"""Live progress of one prompt for the ``comfysync`` command.

Two halves, so each can be tested alone:

* :class:`RunProgress` turns the prompt's events into a small state (which node runs, its
  step counter, how many nodes are done, how many previews arrived). It does no I/O.
* A renderer draws that state on a stream: :class:`TqdmRenderer` (two bars, when ``tqdm`` is
  installed — the ``cli`` extra), :class:`PlainRenderer` (one line rewritten with ``\\r``) or
  :class:`NullRenderer` (when the stream is not a terminal, so logs and pipes stay clean).

Events arrive on the client's listener thread while the main thread waits, so
:class:`ProgressReporter` serialises them under a lock before touching the stream.
"""

from __future__ import annotations

import threading
from typing import IO, Any, Dict, Iterable, List, Mapping, Optional, Set

from .. import events

__all__ = [
    "RunProgress",
    "Renderer",
    "NullRenderer",
    "PlainRenderer",
    "TqdmRenderer",
    "ProgressReporter",
    "make_renderer",
    "PROGRESS_MODES",
]

#: Values of ``--progress``: ``auto`` = tqdm if installed, else plain; nothing when the stream
#: is not a terminal.
PROGRESS_MODES = ("auto", "tqdm", "plain", "none")


class RunProgress:
    """What the user should see about one prompt, updated from its events (no I/O).

    ``labels`` maps node id → a readable name (the node's title, else its class).
    """

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels: Dict[str, str] = dict(labels)
        self.total = len(self.labels)
        self.done: Set[str] = set()
        self.cached: Set[str] = set()
        self.current: Optional[str] = None
        self.value: float = 0
        self.max: float = 0
        self.previews = 0
        self.finished = False

    @property
    def completed(self) -> int:
        """Nodes executed or taken from the cache, never more than ``total``."""
        return min(len(self.done), self.total) if self.total else len(self.done)

    def label(self, node_id: Optional[str]) -> str:
        if node_id is None:
            return ""
        name = self.labels.get(node_id)
        return f"{name} #{node_id}" if name else f"#{node_id}"

    def _finish_current(self) -> None:
        if self.current is not None:
            self.done.add(self.current)
        self.current = None
        self.value = 0
        self.max = 0

    def _mark_done(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            self.done.add(str(node))

    def apply(self, event: events.Event) -> bool:
        """Update the state from one event; True when something visible changed."""
        if isinstance(event, events.ExecutionCached):
            nodes = [str(n) for n in event.nodes]
            self.cached.update(nodes)
            self._mark_done(nodes)
            return bool(nodes)
        if isinstance(event, events.Executing):
            self._finish_current()
            if event.node is None:
                self.finished = True
            else:
                self.current = str(event.node)
            return True
        if isinstance(event, events.Progress):
            node = str(event.node) if event.node is not None else self.current
            if node is not None and node != self.current:
                self._finish_current()
                self.current = node
            self.value, self.max = event.value, event.max
            return True
        if isinstance(event, events.Executed):
            if event.node is not None:
                self.done.add(str(event.node))
            return event.node is not None
        if isinstance(event, events.Preview):
            self.previews += 1
            return True
        if isinstance(event, events.ExecutionSuccess):
            self._finish_current()
            self.done.update(self.labels)  # nodes no output needed were skipped: still "done"
            self.finished = True
            return True
        if isinstance(event, (events.ExecutionError, events.ExecutionInterrupted)):
            self.current = None  # the failing node is not "done"
            self.value = self.max = 0
            self.finished = True
            return True
        return False


class Renderer:
    """Draws a :class:`RunProgress`. The base class draws nothing (:class:`NullRenderer`)."""

    def update(self, state: RunProgress) -> None:
        """Redraw after ``state`` changed."""

    def close(self) -> None:
        """Leave the terminal clean (end the line, close bars)."""


class NullRenderer(Renderer):
    """For pipes, files and CI logs: no progress output at all."""


def _bar(value: float, maximum: float, width: int) -> str:
    filled = int(round(width * value / maximum)) if maximum > 0 else 0
    filled = max(0, min(width, filled))
    return "#" * filled + "." * (width - filled)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


class PlainRenderer(Renderer):
    """One status line, rewritten in place with ``\\r`` (no dependency)::

        [3/7] KSampler #3 [##########..........] 10/20  previews: 9
    """

    def __init__(self, stream: IO[str], *, bar_width: int = 20) -> None:
        self._stream = stream
        self._bar_width = bar_width
        self._last = ""
        self._width = 0

    def render(self, state: RunProgress) -> str:
        """The status line for ``state`` (without ``\\r``)."""
        total = state.total or "?"
        parts = [f"[{state.completed}/{total}]"]
        if state.current is not None:
            parts.append(state.label(state.current))
            if state.max > 0:
                parts.append(f"[{_bar(state.value, state.max, self._bar_width)}]")
                parts.append(f"{_num(state.value)}/{_num(state.max)}")
        elif state.finished:
            parts.append("done")
        else:
            parts.append("waiting")
        if state.previews:
            parts.append(f" previews: {state.previews}")
        return " ".join(parts)

    def update(self, state: RunProgress) -> None:
        line = self.render(state)
        if line == self._last:
            return
        pad = " " * max(0, self._width - len(line))
        self._stream.write("\r" + line + pad)
        self._stream.flush()
        self._last = line
        self._width = len(line)

    def close(self) -> None:
        if self._last:
            self._stream.write("\n")
            self._stream.flush()
            self._last = ""
            self._width = 0


class TqdmRenderer(Renderer):
    """Two ``tqdm`` bars: nodes done over the whole prompt, and steps of the running node."""

    def __init__(self, stream: IO[str]) -> None:
        from tqdm import tqdm  # the ``cli`` extra; make_renderer checked it is importable

        self._tqdm: Any = tqdm
        self._stream = stream
        self._overall: Any = None
        self._node: Any = None
        self._node_key: Optional[str] = None
        self._previews = -1

    def update(self, state: RunProgress) -> None:
        if self._overall is None:
            self._overall = self._tqdm(
                total=state.total or None, desc="prompt", unit="node", file=self._stream,
                position=0, leave=True, dynamic_ncols=True,
            )
        self._overall.n = state.completed
        if state.previews != self._previews:
            self._previews = state.previews
            self._overall.set_postfix_str(f"previews: {state.previews}", refresh=False)
        self._overall.refresh()
        key = state.current if state.max > 0 else None
        if key != self._node_key:
            self._close_node()
            self._node_key = key
            if key is not None:
                self._node = self._tqdm(
                    total=state.max, desc=state.label(key), unit="step", file=self._stream,
                    position=1, leave=False, dynamic_ncols=True,
                )
        if self._node is not None:
            if self._node.total != state.max:
                self._node.total = state.max
            self._node.n = state.value
            self._node.refresh()

    def _close_node(self) -> None:
        if self._node is not None:
            self._node.close()
            self._node = None

    def close(self) -> None:
        self._close_node()
        self._node_key = None
        if self._overall is not None:
            self._overall.close()
            self._overall = None


def _tqdm_available() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed or detached stream
        return False


def make_renderer(mode: str, stream: IO[str]) -> Renderer:
    """The renderer for ``--progress MODE`` on ``stream``.

    ``auto`` draws only on a terminal: tqdm when installed, else the plain line. ``tqdm`` and
    ``plain`` force that renderer (``tqdm`` falls back to plain when it is not installed).
    """
    if mode not in PROGRESS_MODES:
        raise ValueError(f"unknown progress mode {mode!r}; expected one of {PROGRESS_MODES}")
    if mode == "none" or (mode == "auto" and not _is_tty(stream)):
        return NullRenderer()
    if mode in ("auto", "tqdm") and _tqdm_available():
        return TqdmRenderer(stream)
    return PlainRenderer(stream)


class ProgressReporter:
    """Feeds a prompt's events (from the listener thread) into a renderer, under a lock."""

    def __init__(self, state: RunProgress, renderer: Renderer) -> None:
        self.state = state
        self._renderer = renderer
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, event: events.Event) -> None:
        with self._lock:
            if self._closed:
                return
            if self.state.apply(event):
                self._renderer.update(self.state)

    def close(self) -> None:
        """Stop drawing (later events are ignored) and end the progress output."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._renderer.close()


def labels_for(workflow: Mapping[str, Any]) -> Dict[str, str]:
    """Node id → ``_meta.title`` or ``class_type`` for an API-format prompt dict."""
    labels: Dict[str, str] = {}
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            continue
        meta = node.get("_meta")
        title = meta.get("title") if isinstance(meta, Mapping) else None
        labels[str(node_id)] = str(title or node.get("class_type") or "?")
    return labels


def describe_counts(state: RunProgress) -> List[str]:
    """Short facts for the final summary line (cached nodes, previews)."""
    facts: List[str] = []
    if state.cached:
        facts.append(f"{len(state.cached)} cached node{'s' if len(state.cached) != 1 else ''}")
    if state.previews:
        facts.append(f"{state.previews} preview{'s' if state.previews != 1 else ''}")
    return facts
