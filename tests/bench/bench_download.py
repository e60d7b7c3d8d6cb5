"""Peak extra memory while saving a 200 MB output with ``OutputFile.save`` (target < 30 MB).

Run from the repository root: ``python tests/bench/bench_download.py [--size-mb N]``.
Not a test (pytest does not collect tests/bench); it prints figures (Linux: reads
``/proc/self``).

FakeComfyUI runs in a child process (so its own buffers do not count), with a node whose UI
output names a file of ``--size-mb`` MB placed in the server's output folder. This process
runs the workflow, then saves the file twice while a sampler thread records the resident set
size every millisecond (and the kernel's high-water mark, reset before each phase where the
kernel allows it):

1. ``result.files[0].save(dir)`` — the streamed download;
2. the naive baseline ``path.write_bytes(result.files[0].read())``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from comfysync import ComfyApi  # noqa: E402

BIG_NAME = "bench_big.bin"
MB = 1024 * 1024


class BigFile:
    """Output node naming the big file that the benchmark put in the output folder."""

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {"required": {}}

    def run(self) -> Dict[str, Any]:
        return {"ui": {"files": [{"filename": BIG_NAME, "subfolder": "", "type": "output"}]}}


def serve(workdir: str) -> None:
    """Child process: run FakeComfyUI until stdin closes."""
    from comfysync.testing import FakeComfyUI

    with FakeComfyUI(workdir=workdir) as server:
        server.register_node("BigFile", BigFile)
        print(server.url, flush=True)
        sys.stdin.readline()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> Optional[int]:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_extra(action: Callable[[], object]) -> Tuple[int, float]:
    """(peak RSS above the level before ``action``, seconds) — sampled and high-water mark."""
    baseline = _rss_bytes()
    hwm_ok = _reset_hwm()
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    peak = max(peak, _rss_bytes())
    if hwm_ok:
        hwm = _hwm_bytes()
        if hwm is not None:
            peak = max(peak, hwm)
    return peak - baseline, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--serve", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    with tempfile.TemporaryDirectory(prefix="comfysync-bench-") as tmp:
        workdir = Path(tmp) / "server"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert child.stdout is not None
            url = child.stdout.readline().strip()
            if not url:
                print("the FakeComfyUI child process did not start", file=sys.stderr)
                return 2
            block = os.urandom(MB)
            with open(workdir / "output" / BIG_NAME, "wb") as fh:
                for _ in range(args.size_mb):
                    fh.write(block)
            del block
            out = Path(tmp) / "saved"
            out.mkdir()
            with ComfyApi(url) as api:
                result = api.run_workflow({"1": {"class_type": "BigFile", "inputs": {}}},
                                          timeout=60)
                output = result.files[0]
                streamed, t_streamed = peak_extra(lambda: output.save(out))
                saved = out / BIG_NAME
                assert saved.stat().st_size == args.size_mb * MB
                saved.unlink()
                naive_path = out / "naive.bin"
                naive, t_naive = peak_extra(lambda: naive_path.write_bytes(output.read()))
                assert naive_path.stat().st_size == args.size_mb * MB
        finally:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(30)

    print(f"file size                     : {args.size_mb} MB")
    print(f"OutputFile.save (streamed)    : peak extra RSS {streamed / MB:7.1f} MB   "
          f"{t_streamed:5.2f} s")
    print(f"write_bytes(read()) (naive)   : peak extra RSS {naive / MB:7.1f} MB   "
          f"{t_naive:5.2f} s")
    ok = streamed < 30 * MB
    print(f"target < 30 MB                : {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
