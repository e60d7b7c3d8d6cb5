"""ComfyPool: spread a batch over several servers, with failover.

    python samples/pool.py [URL ...]      # default: $COMFYUI_URLS (comma-separated),
                                          # else $COMFYUI_URL, else 127.0.0.1:8188
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from comfysync import ComfyPool, Workflow

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def server_urls() -> list[str]:
    if len(sys.argv) > 1:
        return sys.argv[1:]
    urls = os.environ.get("COMFYUI_URLS") or os.environ.get("COMFYUI_URL", "127.0.0.1:8188")
    return [u.strip() for u in urls.split(",") if u.strip()]


def main() -> None:
    template = Workflow.load(WORKFLOWS / "progress.json")
    workflows = []
    for i in range(6):
        wf = template.copy()
        wf.set_many({"2.steps": 2, "3.text": f"job {i}"})
        wf.randomize_seeds()
        workflows.append(wf)

    with ComfyPool(server_urls(), policy="least_busy") as pool:
        for i, result in enumerate(pool.map(workflows, timeout=300)):
            print(f"job {i}: {result.status} on {result.server} -> {result.text}")
        for url, stats in pool.stats().items():
            print(f"{url}: {stats}")


if __name__ == "__main__":
    main()
