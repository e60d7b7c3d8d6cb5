"""The event log, as you would watch it in a REPL: every event the server sends, typed.

    python samples/event_log_repl.py [SERVER_URL]

In an interactive session, keep the client open and run things while the log prints:

    >>> from comfysync import ComfyApi
    >>> api = ComfyApi("127.0.0.1:8188"); api.connect()
    >>> sub = api.on("*", print)          # every event, on the listener thread
    >>> api.run_workflow("workflow_api.json")
    >>> sub.cancel(); api.close()
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from comfysync import ComfyApi, events

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
START = time.monotonic()


def log(ev: events.Event) -> None:
    """One line per event: time, wire name and the fields that matter."""
    if isinstance(ev, events.Preview):
        detail = f"{ev.mime_type}, {len(ev.image)} bytes, node {ev.node_id}"
    elif isinstance(ev, events.Progress):
        detail = f"node {ev.node}: {ev.value:g}/{ev.max:g}"
    elif isinstance(ev, events.Executing):
        detail = f"node {ev.node}" if ev.node is not None else "prompt finished"
    elif isinstance(ev, events.Executed):
        detail = f"node {ev.node} output {ev.output}"
    elif isinstance(ev, events.ProgressState):
        detail = ", ".join(f"{n}: {p.state} {p.value:g}/{p.max:g}" for n, p in ev.nodes.items())
    elif isinstance(ev, events.Status):
        detail = f"queue_remaining={ev.queue_remaining}"
    else:
        detail = ""
    print(f"{time.monotonic() - START:7.3f}s  {ev.type:<22} {detail}")


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    with ComfyApi(url) as api:
        subscription = api.on("*", log)
        result = api.run_workflow(str(WORKFLOWS / "progress.json"), timeout=120)
        subscription.cancel()
        print("text outputs:", result.text)


if __name__ == "__main__":
    main()
