"""Per-run wall time of ``run_workflow`` vs a hand-written requests + websocket-client loop.

Run from the repository root: ``python tests/bench/bench_run.py [--runs N]``.
Not a test (pytest does not collect tests/bench); it prints figures. Target: comfysync's median
is at most 1.2x the raw loop's.

Both clients do the same work against the same FakeComfyUI, in the same process and run: one
long-lived socket and HTTP session; per run ``POST /prompt`` (a trivial, never-cached
workflow: EmptyImage → ProbeText with a fresh text), read the socket until ``executing`` with
``node: null`` for that prompt, then ``GET /history/{id}``. The raw loop stops there;
comfysync additionally builds its ``PromptResult``. Runs alternate between the two clients so
that drift of the machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import websocket  # noqa: E402

from comfysync import ComfyApi  # noqa: E402
from comfysync.testing import FakeComfyUI  # noqa: E402


def workflow(text: str) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeText", "inputs": {"text": text, "image": ["1", 0]}},
    }


class RawClient:
    """What a careful user writes by hand with requests + websocket-client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.session = requests.Session()
        ws_url = url.replace("http://", "ws://") + f"/ws?clientId={self.client_id}"
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.ws.recv()  # the greeting status

    def run(self, prompt: Dict[str, Any]) -> Dict[str, Any]:
        answer = self.session.post(f"{self.url}/prompt", timeout=30,
                                   json={"prompt": prompt, "client_id": self.client_id})
        answer.raise_for_status()
        prompt_id = answer.json()["prompt_id"]
        while True:
            frame = self.ws.recv()
            if isinstance(frame, str):
                message = json.loads(frame)
                data = message.get("data") or {}
                if (message.get("type") == "executing" and data.get("node") is None
                        and data.get("prompt_id") == prompt_id):
                    break
        history = self.session.get(f"{self.url}/history/{prompt_id}", timeout=30)
        history.raise_for_status()
        entry: Dict[str, Any] = history.json()[prompt_id]
        return entry

    def close(self) -> None:
        self.ws.close()
        self.session.close()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per client")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    with FakeComfyUI() as server:
        api = ComfyApi(server.url)
        api.connect()
        raw = RawClient(server.url)
        counter = iter(range(10 ** 9))

        def ours() -> None:
            result = api.run_workflow(workflow(f"ours {next(counter)}"), timeout=30)
            assert result.text["2"][0].startswith("ours")

        def theirs() -> None:
            entry = raw.run(workflow(f"raw {next(counter)}"))
            assert entry["outputs"]["2"]["text"][0].startswith("raw")

        for _ in range(args.warmup):
            ours()
            theirs()
        ours_times: List[float] = []
        raw_times: List[float] = []
        for i in range(args.runs):
            if i % 2:
                ours_times.append(timed(ours))
                raw_times.append(timed(theirs))
            else:
                raw_times.append(timed(theirs))
                ours_times.append(timed(ours))
        raw.close()
        api.close()

    ours_median = statistics.median(ours_times)
    raw_median = statistics.median(raw_times)
    ratio = ours_median / raw_median
    print(f"runs per client        : {args.runs} (after {args.warmup} warm-up runs each)")
    print(f"raw requests+websocket : median {raw_median * 1000:7.2f} ms   "
          f"p90 {statistics.quantiles(raw_times, n=10)[-1] * 1000:7.2f} ms")
    print(f"comfysync run_workflow : median {ours_median * 1000:7.2f} ms   "
          f"p90 {statistics.quantiles(ours_times, n=10)[-1] * 1000:7.2f} ms")
    print(f"ratio (median)         : {ratio:.2f}x   (target <= 1.20x)  "
          f"{'OK' if ratio <= 1.2 else 'MISSED'}")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
