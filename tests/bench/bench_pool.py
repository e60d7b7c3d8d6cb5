"""ComfyPool throughput on 1 vs 3 servers (target: >= 2.7x with 3).

Run from the repository root: ``python tests/bench/bench_pool.py [--jobs N] [--seconds S]``.
Not a test (pytest does not collect tests/bench); it prints figures.

Each job is ``EmptyImage → ProbeSleep(S seconds, distinct seed) → ProbeText(distinct text)``
on FakeComfyUI, so every job really occupies its server for S seconds (nothing is served from
the cache) while costing almost no CPU: the figure measures the pool's scheduling — how close
it keeps every server busy — not the machine. ``pool.map`` runs the N jobs; throughput is
N / wall time, for ``max_inflight_per_server`` 1 (the default: the next job is sent when the
server is free) and 2 (the next job already waits in the server's queue). ``--tracker http``
follows the prompts by HTTP polling instead of the WebSocket (the pool then also pings each
busy server for its health).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from comfysync import ComfyPool  # noqa: E402
from comfysync.testing import FakeComfyUI  # noqa: E402


def job(i: int, seconds: float) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": i}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": i}},
        "3": {"class_type": "ProbeText", "inputs": {"text": f"bench-{i}", "image": ["2", 0]}},
    }


def run(servers: List[FakeComfyUI], jobs: int, seconds: float, inflight: int,
        offset: int, tracker: str) -> float:
    """Jobs per second for ``jobs`` jobs on ``servers``."""
    urls = [s.url for s in servers]
    with ComfyPool(urls, max_inflight_per_server=inflight, tracker=tracker) as pool:
        pool.run_workflow(job(offset - 1, 0.0), timeout=30)  # connect outside the timing
        workflows = [job(offset + i, seconds) for i in range(jobs)]
        started = time.perf_counter()
        results = pool.map(workflows, timeout=jobs * seconds * 3 + 60)
        elapsed = time.perf_counter() - started
    texts = [r.text["3"][0] for r in results]
    assert texts == [f"bench-{offset + i}" for i in range(jobs)], "results out of order"
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="jobs per run (default 30)")
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="ProbeSleep time of each job (default 0.2)")
    parser.add_argument("--tracker", choices=("auto", "http"), default="auto",
                        help="how the clients follow prompts (default auto: the WebSocket)")
    args = parser.parse_args()

    servers = [FakeComfyUI().start() for _ in range(3)]
    try:
        ideal = 1.0 / args.seconds
        print(f"{args.jobs} jobs of ProbeSleep({args.seconds:g} s), tracker={args.tracker}; "
              f"one server's ideal: {ideal:.2f} jobs/s")
        offset = 1_000
        for inflight in (1, 2):
            one = run(servers[:1], args.jobs, args.seconds, inflight, offset, args.tracker)
            offset += 1_000
            three = run(servers, args.jobs, args.seconds, inflight, offset, args.tracker)
            offset += 1_000
            print(f"max_inflight_per_server={inflight}: 1 server {one:.2f} jobs/s "
                  f"({one / ideal:.0%} of ideal), 3 servers {three:.2f} jobs/s "
                  f"-> {three / one:.2f}x")
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
