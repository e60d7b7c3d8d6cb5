"""Per-run wall time on the Comfy API v2: ``ComfyApi.run_workflow`` vs Comfy-Org's ``comfy-sdk``
(``Comfy().run``), both through the same comfy-api-proxy in front of the same FakeComfyUI.

Run from the repository root: ``python tests/bench/bench_v2.py [--runs N]``. Not a test
(pytest does not collect tests/bench); it prints figures. Target: comfysync's median is at most
1.0x comfy-sdk's.

Per run each client submits a trivial, never-cached workflow (EmptyImage → ProbeSleep with a
fresh seed → SaveImage) and blocks until the job resource says it succeeded, with its
outputs. comfy-sdk polls ``GET /api/v2/jobs/{id}`` (its documented way); comfysync reads the
job once right after submitting it and, when it is unfinished, reads its event stream, whose
terminal frame makes it read the job at once.
Runs alternate between the two clients so that drift of the machine hits both alike. The
``expired`` reads the proxy gives for a job that finishes between its two reads of ComfyUI
are counted: comfy-sdk reports them as failures, comfysync reads the job again.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from comfysync import ComfyApi  # noqa: E402
from comfysync.testing import FakeComfyUI  # noqa: E402


def workflow(seed: int, seconds: float) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                   "filename_prefix": "bench/v2"}},
    }


def start_proxy(upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "comfy_api_proxy.cli", "run", "--comfyui", upstream,
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/api/v2/health", timeout=1).ok:
                return process, url
        except requests.RequestException:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("comfy-api-proxy did not start")


def summary(name: str, times: List[float], failures: int) -> str:
    ordered = sorted(times)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)] if ordered else float("nan")
    median = statistics.median(ordered) if ordered else float("nan")
    return (f"{name:10s} median {median * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
            f"runs {len(times)}   failed {failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="how long each job runs on the server (default 0.2 s)")
    args = parser.parse_args()
    try:
        import comfy_sdk
    except ImportError:
        raise SystemExit('needs comfy-sdk and comfy-api-proxy: pip install -e ".[dev]"') from None

    with FakeComfyUI(jobs_api=True) as upstream:
        proxy, url = start_proxy(upstream.url)
        os.environ["COMFY_BASE_URL"] = url
        try:
            sdk = comfy_sdk.Comfy()
            with ComfyApi(url) as api:
                def ours(seed: int) -> None:
                    result = api.run_workflow(workflow(seed, args.seconds), timeout=60)
                    assert result.images

                def theirs(seed: int) -> None:
                    job = sdk.run(sdk.workflows.from_json(workflow(seed, args.seconds)),
                                  timeout=60)
                    assert job.outputs

                runners: Dict[str, Callable[[int], None]] = {"comfysync": ours,
                                                             "comfy-sdk": theirs}
                times: Dict[str, List[float]] = {name: [] for name in runners}
                failed: Dict[str, int] = {name: 0 for name in runners}
                for name, run in runners.items():  # warm up both
                    try:
                        run(10_000_000 + len(name))
                    except Exception as exc:  # comfy-sdk believes a first `expired`
                        print(f"{name} warm-up run failed: {type(exc).__name__}: {exc}")
                for i in range(args.runs):
                    for name, run in (runners.items() if i % 2 == 0
                                      else reversed(list(runners.items()))):
                        started = time.perf_counter()
                        try:
                            run(i * 2 + (name == "comfy-sdk"))
                        except Exception as exc:  # counted, not fatal: the point of the run
                            failed[name] += 1
                            print(f"{name} run {i} failed: {type(exc).__name__}: {exc}")
                            continue
                        times[name].append(time.perf_counter() - started)
            sdk.close()
        finally:
            proxy.terminate()
            proxy.wait(10)
    print(f"{args.runs} runs each of a {args.seconds:g} s job through comfy-api-proxy:")
    for name in times:
        print(summary(name, times[name], failed[name]))
    ratio = statistics.median(times["comfysync"]) / statistics.median(times["comfy-sdk"])
    print(f"comfysync / comfy-sdk median: {ratio:.2f}x (target <= 1.0x)")


if __name__ == "__main__":
    main()
