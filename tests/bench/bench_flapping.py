"""Prompt completion under a flapping link (target: p95 of a 0.2 s prompt <= 3 s).

Run from the repository root: ``python tests/bench/bench_flapping.py [--prompts N]``.
Not a test (pytest does not collect tests/bench); it prints figures.

A FakeComfyUI runs a ``ProbeSleep(0.2 s)`` prompt per run (distinct seeds: nothing cached).
The client reaches it through a loopback forwarder that cuts every open connection — the
WebSocket and any HTTP request under way, ``POST /prompt`` included — every 0.3–1.5 s
(uniformly drawn). ``run_workflow`` is timed from the call to the result, one prompt after the
other, with the client's default settings; the same runs without cuts give the baseline. At the
end every prompt must have run exactly once on the server.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _forwarder import Forwarder  # noqa: E402

from comfysync import ComfyApi  # noqa: E402
from comfysync.testing import FakeComfyUI  # noqa: E402


def prompt(seed: int, seconds: float) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": seed % 255}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": f"run-{seed}", "image": ["2", 0]}},
    }


def cutter(forwarder: Forwarder, stop: threading.Event, low: float, high: float,
           rng: random.Random, cuts: List[int]) -> None:
    while not stop.wait(rng.uniform(low, high)):
        forwarder.cut()
        cuts[0] += 1


def timed_runs(url: str, count: int, seconds: float, first_seed: int) -> List[float]:
    times: List[float] = []
    with ComfyApi(url) as api:
        for i in range(count):
            seed = first_seed + i
            started = time.perf_counter()
            result = api.run_workflow(prompt(seed, seconds), timeout=120)
            times.append(time.perf_counter() - started)
            assert result.text["3"][0] == f"run-{seed}", result.text
    return times


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def describe(name: str, times: List[float]) -> str:
    return (f"{name}: n={len(times)} median {statistics.median(times):.2f} s, "
            f"p95 {percentile(times, 0.95):.2f} s, max {max(times):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=60, help="prompts per run (default 60)")
    parser.add_argument("--seconds", type=float, default=0.2, help="prompt duration (0.2)")
    parser.add_argument("--cut-min", type=float, default=0.3)
    parser.add_argument("--cut-max", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=1, help="seed of the cut schedule")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the drops are the point: not worth a warning

    with FakeComfyUI() as server:
        forwarder = Forwarder(server.port)
        try:
            calm = timed_runs(forwarder.url, max(10, args.prompts // 3), args.seconds, 10_000)
            stop = threading.Event()
            cuts = [0]
            thread = threading.Thread(
                target=cutter,
                args=(forwarder, stop, args.cut_min, args.cut_max, random.Random(args.seed),
                      cuts),
                daemon=True,
            )
            thread.start()
            try:
                flapping = timed_runs(forwarder.url, args.prompts, args.seconds, 20_000)
            finally:
                stop.set()
                thread.join(5)
        finally:
            forwarder.close()
        executions = server.executions()
    twice = {k: v for k, v in executions.items() if v != 1}
    print(describe("no cuts", calm))
    print(describe(f"cut every {args.cut_min}-{args.cut_max} s ({cuts[0]} cuts)", flapping))
    print(f"prompts executed: {len(executions)}, more than once: {len(twice)}")
    p95 = percentile(flapping, 0.95)
    print(f"target p95 <= 3 s: {'met' if p95 <= 3.0 and not twice else 'MISSED'}")


if __name__ == "__main__":
    main()
