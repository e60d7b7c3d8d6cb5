"""Send renders to the workers and follow them: ``python submit.py [OUT_DIR]``.

Uses the app of ``render.py`` (the same ``REDIS_URL``); the workers save the files into
OUT_DIR (default ``./renders``), which they must be able to write to.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from celery import states
from render import WORKFLOW, app

from comfysync.celery import PROGRESS


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "renders").resolve()
    workflow = json.loads(WORKFLOW.read_text())
    pending = {
        f"seed {seed}": app.send_task(
            "comfysync.run_workflow",
            args=[workflow],
            kwargs={"set": {"Sampler.seed": seed, "Caption.text": f"render {seed}"},
                    "save_to": str(out), "timeout": 120},
        )
        for seed in (1, 2, 3, 4)
    }
    variants = app.send_task("render.captioned_variants", args=["variant", [7, 8]])

    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:  # what a web page would poll for
        for name, res in list(pending.items()):
            # One read of the task's meta: ``res.state`` then ``res.info`` would be two reads,
            # and the task may finish in between (its info then being the result document).
            meta = res.backend.get_task_meta(res.id)
            state, info = meta["status"], meta["result"]
            if state == PROGRESS and isinstance(info, dict):
                print(f"{name}: node {info.get('node')} {info.get('percent', 0.0):.0f}%")
            elif state in states.READY_STATES:  # a finished task stays finished
                doc = res.get()
                saved = ", ".join(str(Path(f["saved_to"]).relative_to(out))
                                  for f in doc["files"])
                print(f"{name}: {doc['status']} on {doc['server']} in {doc['duration']:.2f} s"
                      f" -> {doc['text']['4'][0]!r}, saved {saved}")
                del pending[name]
        time.sleep(0.1)
    if pending:
        sys.exit(f"still running after 120 s: {sorted(pending)}")
    for doc in variants.get(timeout=120):
        print(f"variant: {doc['prompt_id']} -> {doc['files'][0]['url']}")


if __name__ == "__main__":
    main()
