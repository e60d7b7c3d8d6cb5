"""ComfyPool: spread a batch over several servers, with failover.

    python samples/pool.py [URL ...]      # default: $COMFYUI_URLS (comma-separated),
                                          # else $COMFYUI_URL, else 127.0.0.1:8188

A server that goes down is skipped and its unfinished jobs are resubmitted elsewhere.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import as_completed
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
    jobs = {}
    with ComfyPool(server_urls(), policy="least_busy") as pool:
        for i in range(6):
            wf = template.copy()
            wf.set_many({"2.steps": 2, "3.text": f"job {i}"})
            wf.randomize_seeds()
            jobs[pool.submit(wf)] = i            # a Future that also knows its server

        for future in as_completed(jobs, timeout=300):
            result = future.result()
            print(f"job {jobs[future]}: {result.status} on {future.server} -> {result.text}")

        for url, stats in pool.stats().items():
            print(f"{url}: {stats.state}, {stats.completed} completed, "
                  f"mean {stats.mean_run_time or 0:.2f} s")


if __name__ == "__main__":
    main()
