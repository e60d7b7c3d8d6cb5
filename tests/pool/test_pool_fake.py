"""ComfyPool against three real FakeComfyUI servers on 127.0.0.1: spreading, failover when a
server stops (followed by socket events, or by HTTP polling and the pool's health pings),
recovery, the all-down error, policies, map/as_completed, the full queue, and
no thread left behind. Each job has a distinct seed and text, so nothing is served from the
server's cache, and its text output proves which job a result belongs to."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Dict, Iterator, List, Sequence

import pytest

from comfysync import ComfyPool
from comfysync._pool.policies import ServerView
from comfysync.errors import (
    ComfyConnectionError,
    PoolFullError,
    PromptExecutionError,
)
from comfysync.testing import FakeComfyUI

WAIT = 20.0  # upper bound of every wait; the tests take a fraction of it
SHAPE = "(1, 8, 8, 3)"


def job(i: int, seconds: float = 0.05) -> Dict[str, Any]:
    """EmptyImage → ProbeSleep(seconds, seed=i) → ProbeText("job-i")."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": i % 0xFFFFFF}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": i}},
        "3": {"class_type": "ProbeText", "inputs": {"text": f"job-{i}", "image": ["2", 0]}},
    }


def text_of(result: Any) -> str:
    lines = result.text["3"]
    assert lines[1] == SHAPE
    return str(lines[0])


def client_threads() -> List[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("comfysync-"))


@pytest.fixture
def servers() -> Iterator[List[FakeComfyUI]]:
    started = [FakeComfyUI().start() for _ in range(3)]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(client_threads())
    yield
    assert set(client_threads()) - before == set()


def make_pool(servers: Sequence[FakeComfyUI], **kw: Any) -> ComfyPool:
    kw.setdefault("backoff_base", 0.1)
    kw.setdefault("backoff_cap", 0.5)
    kw.setdefault("connect_timeout", 5.0)
    kw.setdefault("timeout", 5.0)
    return ComfyPool([s.url for s in servers], **kw)


@pytest.mark.parametrize("policy", ["least_busy", "round_robin"])
def test_thirty_jobs_spread_over_three_servers(servers: List[FakeComfyUI], policy: str) -> None:
    events: List[str] = []
    arrived = threading.Condition()

    def on_success(event: Any, url: str) -> None:
        with arrived:
            events.append(url)
            arrived.notify_all()

    with make_pool(servers, policy=policy) as pool:
        pool.on("execution_success", on_success)
        futures = [pool.submit(job(i)) for i in range(30)]
        for future in concurrent.futures.as_completed(futures, timeout=WAIT):
            future.result()
        texts = [text_of(f.result()) for f in futures]
        assert texts == [f"job-{i}" for i in range(30)]
        per_server = collections.Counter(f.server for f in futures)
        assert set(per_server) == {s.url for s in servers}
        assert all(n >= 5 for n in per_server.values()), per_server
        stats = pool.stats()
        assert sum(s.completed for s in stats.values()) == 30
        assert all(s.completed == per_server[url] and s.up for url, s in stats.items())
        assert all(s.mean_run_time is not None and s.mean_run_time > 0.04 for s in stats.values())
        with arrived:  # the last event may trail the last result
            assert arrived.wait_for(lambda: len(events) == 30, WAIT)
        assert collections.Counter(events) == per_server
    for server in servers:  # each server ran exactly the jobs the pool said it did
        assert len(server.history()) == per_server[server.url]


@pytest.mark.parametrize("tracking", ["socket", "http", "fallback"])
def test_stopped_server_jobs_finish_elsewhere_exactly_once(
    servers: List[FakeComfyUI], tracking: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``socket``: the drop is an event. ``http`` (``tracker="http"`` passed through) and
    ``fallback`` (WebSockets refused, so ``"auto"`` polls): nothing tells the pool, its
    health pings find out."""
    kw: Dict[str, Any] = {"tracker": "http"} if tracking == "http" else {}
    if tracking == "fallback":
        for server in servers:
            server.faults.refuse_websockets(None)
    victim = servers[1]
    caplog.set_level(logging.WARNING, logger="comfysync.pool")
    with make_pool(servers, failover_after=0.5, **kw) as pool:
        futures = [pool.submit(job(i, seconds=0.3)) for i in range(12)]
        victim.wait_for_running(timeout=WAIT)
        started = time.monotonic()
        victim.stop()
        results = [f.result(WAIT) for f in futures]
        # 12 jobs of 0.3 s on two servers, plus failover_after and a ping or two
        assert time.monotonic() - started < 10
        texts = collections.Counter(text_of(r) for r in results)
        assert texts == collections.Counter(f"job-{i}" for i in range(12))
        assert len({r.prompt_id for r in results}) == 12
        assert victim.url not in {f.server for f in futures}
        assert any(f.attempts >= 2 for f in futures)
        stats = pool.stats()
        assert stats[victim.url].state == "down" and stats[victim.url].lost >= 1
        assert sum(s.completed for s in stats.values()) == 12
        if tracking != "socket":  # no event told the pool: its pings found out
            downs = [r.getMessage() for r in caplog.records if " is down: " in r.getMessage()]
            assert downs == [f"{victim.url} is down: did not answer health pings for more "
                             "than 0.5 s"]
    survivors_ran = sum(len(s.history()) for s in (servers[0], servers[2]))
    assert survivors_ran == 12 - stats[victim.url].completed


def test_all_servers_down_is_a_clear_error_within_bounded_time(
    servers: List[FakeComfyUI],
) -> None:
    for server in servers:
        server.stop()
    with make_pool(servers, wait_for_server=1.0) as pool:
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError) as info:
            pool.run_workflow(job(1))
        assert time.monotonic() - started < 10
        assert "no server" in str(info.value)
        assert all(s.state == "down" for s in pool.stats().values())
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError, match="no server of the pool answers") as err:
            pool.run_workflow(job(2))
        assert time.monotonic() - started < 10
        assert all(s.url in str(err.value) for s in servers)


def test_stopped_servers_fail_a_pool_within_seconds_by_default(
    servers: List[FakeComfyUI],
) -> None:
    for server in servers[:2]:
        server.stop()
    with make_pool(servers[:2]) as pool:  # wait_for_server=30 s
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError) as info:
            pool.run_workflow(job(1))
        assert time.monotonic() - started < 5
        assert all(s.url in str(info.value) for s in servers[:2])


def test_server_back_up_is_used_again(servers: List[FakeComfyUI]) -> None:
    first, second = servers[0], servers[1]
    port = second.port
    second.stop()
    with make_pool([first, second], policy="round_robin") as pool:
        # round robin sends the second job to the stopped server: refused, run on the first
        assert [text_of(pool.run_workflow(job(i), timeout=WAIT)) for i in (1, 2)] == [
            "job-1", "job-2"]
        assert pool.stats()[second.url].state == "down"
        assert len(first.history()) == 2
        with FakeComfyUI(port=port) as reborn:
            assert pool._wait_until(lambda stats: stats[reborn.url].up, WAIT)  # a probe
            futures = [pool.submit(job(10 + i)) for i in range(4)]
            assert sorted(text_of(f.result(WAIT)) for f in futures) == [
                f"job-{10 + i}" for i in range(4)]
            assert reborn.url in {f.server for f in futures}
            assert len(reborn.history()) >= 1


def test_restarted_server_loses_its_prompt_and_the_pool_resubmits(
    servers: List[FakeComfyUI],
) -> None:
    victim = servers[0]
    with make_pool(servers[:2], failover_after=5.0) as pool:
        future = pool.submit(job(7, seconds=0.5), include=victim.url)
        victim.wait_for_running(timeout=WAIT)
        victim.restart()  # the running prompt is forgotten: PromptLostError, retried
        assert text_of(future.result(WAIT)) == "job-7"
        assert future.attempts == 2 and future.server == victim.url
        assert pool.stats()[victim.url].lost == 1


def test_custom_policy_and_tags(servers: List[FakeComfyUI]) -> None:
    calls: List[List[str]] = []

    def biggest_gpu(views: Sequence[ServerView], workflow: Any) -> Any:
        calls.append([v.url for v in views])
        tagged = [v for v in views if "big" in v.tags]
        return tagged[0] if tagged else None  # wait for a big one

    urls: List[Any] = [servers[0].url, (servers[1].url, {"tags": ["big"]}),
                       (servers[2].url, {"tags": ["big"], "weight": 2})]
    with ComfyPool(urls, policy=biggest_gpu, timeout=5.0) as pool:
        results = pool.map([job(i) for i in range(6)], timeout=WAIT)
        assert [text_of(r) for r in results] == [f"job-{i}" for i in range(6)]
        assert len(servers[0].history()) == 0
        assert len(servers[1].history()) + len(servers[2].history()) == 6
        assert calls and all(servers[0].url in c or len(c) < 3 for c in calls)
        # include/exclude narrow the choice further
        only = pool.run_workflow(job(99), include="big", exclude=servers[1].url, timeout=WAIT)
        assert text_of(only) == "job-99" and len(servers[2].history()) >= 1


def test_map_order_and_errors(servers: List[FakeComfyUI]) -> None:
    bad = job(5)
    bad["2"] = {"class_type": "ProbeFail", "inputs": {"image": ["1", 0], "message": "nope"}}
    with make_pool(servers) as pool:
        # later jobs are shorter, so they finish first: map still returns them in order
        workflows = [job(i, seconds=0.05 * (8 - i)) for i in range(8)]
        assert [text_of(r) for r in pool.map(workflows, timeout=WAIT)] == [
            f"job-{i}" for i in range(8)]
        out = pool.map([job(20), bad, job(21)], timeout=WAIT, return_exceptions=True)
        assert isinstance(out[1], PromptExecutionError) and "nope" in str(out[1])
        assert text_of(out[2]) == "job-21"
        stats = pool.stats()
        assert sum(s.failed for s in stats.values()) == 1  # never retried
        assert sum(len(s.history()) for s in servers) == 11


def test_full_queue_raises(servers: List[FakeComfyUI]) -> None:
    with make_pool(servers[:1], max_queued=2) as pool:
        running = pool.submit(job(1, seconds=1.0))
        servers[0].wait_for_running(timeout=WAIT)
        queued = [pool.submit(job(2)), pool.submit(job(3))]
        with pytest.raises(PoolFullError, match="max_queued=2"):
            pool.submit(job(4))
        assert [text_of(f.result(WAIT)) for f in [running, *queued]] == [
            "job-1", "job-2", "job-3"]


def test_servers_with_model(servers: List[FakeComfyUI]) -> None:
    with FakeComfyUI(models={"checkpoints": ["sdxl.safetensors"]}) as rich:
        with make_pool([servers[0], rich]) as pool:
            assert pool.servers_with_model("checkpoints", "sdxl.safetensors") == [rich.url]


def test_close_leaves_no_thread(servers: List[FakeComfyUI]) -> None:
    before = set(client_threads())
    pool = make_pool(servers)
    pool.map([job(i) for i in range(6)], timeout=WAIT)
    assert set(client_threads()) - before  # the pool and its clients did start threads
    pool.close()
    assert set(client_threads()) - before == set()
