"""Test support for the node tests: a recording ExecutionContext and a minimal graph runner.

(A uniquely named module rather than conftest.py, so test files can import from it.)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from comfysync.testing._context import NodeInterrupted, PreviewTuple
from comfysync.testing._nodes import NodeRegistry


class RecordingContext:
    """Implements ExecutionContext; records what a node asks of the server."""

    def __init__(self, root: Path, preview_method: str = "auto", preview_size: int = 512) -> None:
        self.prompt_id = "p-1"
        self.node_id = "7"
        self.display_node_id = "7"
        self.input_dir = root / "input"
        self.output_dir = root / "output"
        self.temp_dir = root / "temp"
        for folder in (self.input_dir, self.output_dir, self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.preview_size = preview_size
        self.preview_method = preview_method
        self.progress_calls: List[Tuple[float, float, Optional[PreviewTuple]]] = []
        self.texts: List[Tuple[str, Optional[str]]] = []
        self.frames: List[Tuple[str, Any]] = []
        self.json_messages: List[Tuple[str, Any, Optional[str]]] = []
        self.slept: List[float] = []
        self.interrupt = threading.Event()
        #: called on every progress update (tests use it to raise the interrupt flag)
        self.on_progress: Optional[Callable[[int], None]] = None

    def progress(self, value: float, max: float, preview: Optional[PreviewTuple] = None) -> None:
        self.progress_calls.append((value, max, preview))
        if self.on_progress is not None:
            self.on_progress(len(self.progress_calls))
        self.check_interrupted()

    def check_interrupted(self) -> None:
        if self.interrupt.is_set():
            self.interrupt.clear()
            raise NodeInterrupted()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.interrupt.wait(timeout=seconds):
            self.check_interrupted()

    def send_text(self, text: str, *, sid: Optional[str] = None) -> None:
        self.texts.append((text, sid))

    def send_image_frame(self, image_format: str, image: Any) -> None:
        self.frames.append((image_format, image))

    def send_json(self, event_type: str, data: Any, *, sid: Optional[str] = None) -> None:
        self.json_messages.append((event_type, data, sid))


NodeRunner = Callable[..., Any]


def run_graph(
    prompt: Dict[str, Any],
    registry: NodeRegistry,
    ctx: RecordingContext,
    outputs: List[str],
    extra_pnginfo: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A minimal executor for tests: runs what ``outputs`` need in dependency order, passing
    hidden inputs by their declared names; returns ``{node_id: ui}`` of the output nodes."""
    results: Dict[str, Any] = {}
    uis: Dict[str, Any] = {}

    def execute(node_id: str) -> Any:
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        cls: Any = registry.get(node["class_type"])
        assert cls is not None
        kwargs: Dict[str, Any] = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                kwargs[name] = execute(value[0])[value[1]]
            else:
                kwargs[name] = value
        for name, kind in cls.INPUT_TYPES().get("hidden", {}).items():
            kwargs[name] = {
                "PROMPT": prompt,
                "EXTRA_PNGINFO": extra_pnginfo,
                "UNIQUE_ID": node_id,
            }.get(kind)
        ctx.node_id = ctx.display_node_id = node_id
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(out, dict):
            if "ui" in out:
                uis[node_id] = out["ui"]
            out = out.get("result", ())
        results[node_id] = out
        return out

    for output in outputs:
        execute(output)
    return uis
