"""Timeouts and cancelling: a wait that gives up, a running prompt interrupted, a pending
prompt removed from the queue.

    python samples/cancel_and_timeout.py [SERVER_URL]

A timeout only stops *waiting*: the prompt keeps running on the server until cancelled.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyApi, PromptError, PromptTimeoutError, Workflow

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    slow = Workflow.load(WORKFLOWS / "slow.json")  # EmptyImage → ProbeSleep(30 s) → SaveImage

    with ComfyApi(url) as api:
        other = slow.copy()
        other.set("2.seed", 2)    # a different prompt (identical ones would be cached)
        running = api.submit(slow)
        waiting = api.submit(other)  # queued behind the first

        try:
            running.wait(timeout=0.5)
        except PromptTimeoutError as exc:
            print(f"timed out: {exc}; status is still {running.status!r}")

        waiting.cancel()          # pending → deleted from the queue
        running.cancel()          # running → interrupted by prompt id
        for name, job in (("running", running), ("waiting", waiting)):
            try:
                job.wait(timeout=30)
            except PromptError as exc:
                print(f"{name} job ended as {job.status!r}: {type(exc).__name__}")
        print("queue now:", api.get_queue().remaining, "prompt(s)")


if __name__ == "__main__":
    main()
