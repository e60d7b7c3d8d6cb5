"""comfysync.celery: throughput of N Celery workers × M FakeComfyUI servers vs one ComfyPool
process on the same servers, and the client-side overhead per task (target: < 5 ms).

Run from the repository root: ``python tests/bench/bench_celery.py [--workers N]
[--concurrency C] [--servers M] [--jobs J] [--seconds S]``. Needs ``redis-server`` on PATH.
Not a test (pytest does not collect tests/bench); it prints figures.

Everything runs on 127.0.0.1 in processes of its own: a redis-server, M FakeComfyUI servers
(``python -m comfysync.testing``) and N ``celery worker`` processes (prefork, C pool processes
each, one ComfyPool over the M servers in each pool process). Each job is ``EmptyImage →
ProbeSleep(S seconds, distinct seed) → ProbeText``: it occupies its server for S seconds at
almost no CPU, so throughput measures how well the work is spread, not the machine.

- **throughput**: J jobs sent at once (``send_task`` then ``get``) vs ``ComfyPool.map`` of the
  same J jobs in this process, on the same servers;
- **overhead per task**: what the task adds around its prompt, measured where it runs — the
  ``comfysync.run_workflow`` task applied in this process (Celery's eager call: no broker)
  minus ``ComfyApi.run_workflow`` of the same trivial workflow on the same server, medians of
  interleaved runs; split into the task layer (vs ``api.submit(wf, prompt_id=...)``, the
  call the task makes) and the cost of submitting under a chosen id; then the same with a
  ComfyPool over the M servers in the task's process (vs ``pool.run_workflow``). For scale,
  the median send → result latency through the broker and a worker.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "celery"))

from _celery_procs import Proc, child_env, free_port, python  # noqa: E402
from celery import Celery  # noqa: E402

import comfysync.celery  # noqa: E402
from comfysync import ComfyApi, ComfyPool  # noqa: E402

TASK = "comfysync.run_workflow"


def job(i: int, seconds: float) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": i % 0xFFFFFF}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": i}},
        "3": {"class_type": "ProbeText", "inputs": {"text": f"bench-{i}", "image": ["2", 0]}},
    }


def median_ms(samples: List[float]) -> float:
    return statistics.median(samples) * 1000.0


def timed(fn: Callable[[], Any], runs: int) -> List[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes each (2)")
    parser.add_argument("--servers", type=int, default=2, help="FakeComfyUI servers (2)")
    parser.add_argument("--jobs", type=int, default=100, help="jobs per throughput run (100)")
    parser.add_argument("--seconds", type=float, default=0.1,
                        help="ProbeSleep time of each job (0.1)")
    parser.add_argument("--runs", type=int, default=60, help="runs for the overhead (60)")
    parser.add_argument("--pool-runs", type=int, default=10,
                        help="runs for the overhead with a ComfyPool (10)")
    args = parser.parse_args()

    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        sys.exit("redis-server is not on PATH (apt-get install redis-server)")
    procs: List[Proc] = []
    try:
        port = free_port()
        redis = Proc("redis", [redis_bin, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"],
                     ready="Ready to accept connections")
        procs.append(redis)
        redis.wait_ready(30)
        broker = f"redis://127.0.0.1:{port}/0"
        urls = []
        for _ in range(args.servers):
            server = Proc("fake", python("-m", "comfysync.testing", "--port", "0"),
                          ready=r"^(http://127\.0\.0\.1:\d+)$")
            procs.append(server)
            urls.append(server.wait_ready(30).group(1))
        env = child_env({"CELERY_TEST_BROKER": broker, "COMFYSYNC_SERVERS": ",".join(urls)})
        for n in range(args.workers):
            worker = Proc(f"worker {n}", python(
                "-m", "celery", "-A", "celery_test_app", "worker", "--pool", "prefork",
                "--concurrency", str(args.concurrency), "--hostname", f"bench{n}@bench",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "WARNING"), env=env, ready=r"\.> celery\s+exchange=")
            procs.append(worker)
            worker.wait_ready(30)
        app = Celery("bench", broker=broker, backend=f"redis://127.0.0.1:{port}/1")
        app.conf.broker_connection_retry_on_startup = True
        # every pool process connects on its first task: warm them all up outside the timing
        warm = [app.send_task(TASK, args=[job(10_000_000 + i, 0.0)])
                for i in range(args.workers * args.concurrency * 2)]
        for res in warm:
            res.get(timeout=60)

        offset = 0
        started = time.perf_counter()
        results = [app.send_task(TASK, args=[job(offset + i, args.seconds)])
                   for i in range(args.jobs)]
        docs = [r.get(timeout=args.jobs * args.seconds * 3 + 60) for r in results]
        celery_rate = args.jobs / (time.perf_counter() - started)
        assert all(d["status"] == "success" for d in docs)

        offset = 1_000_000
        with ComfyPool(urls) as pool:
            pool.run_workflow(job(offset - 1, 0.0), timeout=30)
            started = time.perf_counter()
            pool.map([job(offset + i, args.seconds) for i in range(args.jobs)],
                     timeout=args.jobs * args.seconds * 3 + 60)
            pool_rate = args.jobs / (time.perf_counter() - started)

        # overhead: the task around its prompt (eager apply, same process, same server)
        local = Celery("bench-local", set_as_current=False)
        local.conf.comfysync = {"servers": [urls[0]], "progress_interval": 0.25}
        task = comfysync.celery.install(local)
        trivial = iter(range(2_000_000, 3_000_000))
        with ComfyApi(urls[0]) as api:
            api.run_workflow(job(next(trivial), 0.0), timeout=30)
            task.apply(args=[job(next(trivial), 0.0)]).get()
            direct: List[float] = []
            chosen: List[float] = []
            wrapped: List[float] = []
            for _ in range(args.runs):  # interleaved, so load changes hit all three alike
                direct += timed(lambda: api.run_workflow(job(next(trivial), 0.0), timeout=30), 1)
                chosen += timed(lambda: api.submit(job(next(trivial), 0.0),
                                                   prompt_id=str(uuid.uuid4())).wait(30), 1)
                wrapped += timed(lambda: task.apply(args=[job(next(trivial), 0.0)]).get(), 1)
        from comfysync.celery._task import _close_clients

        _close_clients()
        pooled: List[float] = []
        pool_direct: List[float] = []
        if len(urls) > 1:  # the same, with a ComfyPool over every server in the task's process
            local_pool = Celery("bench-local-pool", set_as_current=False)
            local_pool.conf.comfysync = {"servers": urls}
            pool_task = comfysync.celery.install(local_pool)
            with ComfyPool(urls) as pool:
                pool.run_workflow(job(next(trivial), 0.0), timeout=30)
                pool_task.apply(args=[job(next(trivial), 0.0)]).get()
                for _ in range(args.pool_runs):
                    pool_direct += timed(
                        lambda: pool.run_workflow(job(next(trivial), 0.0), timeout=30), 1)
                    pooled += timed(
                        lambda: pool_task.apply(args=[job(next(trivial), 0.0)]).get(), 1)
            _close_clients()
        latency = timed(lambda: app.send_task(TASK, args=[job(next(trivial), 0.0)])
                        .get(timeout=30), args.runs)
        app.close()
    finally:
        for proc in reversed(procs):
            proc.stop()

    bound = args.servers / args.seconds
    print(f"{args.workers} workers x {args.concurrency} processes, {args.servers} servers, "
          f"{args.jobs} jobs of {args.seconds} s (servers' bound {bound:.1f} jobs/s)")
    print(f"  celery:    {celery_rate:6.1f} jobs/s")
    print(f"  ComfyPool: {pool_rate:6.1f} jobs/s (one process)")
    print(f"overhead per task: {median_ms(wrapped) - median_ms(direct):.2f} ms (target < 5 ms):"
          f" task {median_ms(wrapped):.2f} ms vs run_workflow {median_ms(direct):.2f} ms, "
          f"medians of {args.runs}; of which the task layer "
          f"{median_ms(wrapped) - median_ms(chosen):.2f} ms and submitting under a chosen id "
          f"{median_ms(chosen) - median_ms(direct):.2f} ms")
    if pooled:
        print(f"overhead per task with a ComfyPool of {len(urls)} servers: "
              f"{median_ms(pooled) - median_ms(pool_direct):.2f} ms (task "
              f"{median_ms(pooled):.2f} ms vs pool.run_workflow {median_ms(pool_direct):.2f} ms,"
              f" medians of {args.pool_runs})")
    print(f"send -> result through redis and a worker: {median_ms(latency):.2f} ms median")


if __name__ == "__main__":
    main()
