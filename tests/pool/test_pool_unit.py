"""ComfyPool's own logic against in-memory fake clients: policies, bookkeeping, queueing,
health and failover. Every wait is bounded and woken by the fakes, never a bare sleep."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from typing import Any, List, Sequence

import pytest
from _poolfakes import WAIT, FakeJob, Hub

from comfysync import events as ev
from comfysync._pool.policies import (
    RoundRobin,
    ServerSpec,
    ServerView,
    least_busy,
    parse_server,
)
from comfysync._pool.pool import ComfyPool, PoolFuture
from comfysync.errors import (
    ComfyConnectionError,
    ComfyError,
    PoolClosedError,
    PoolFullError,
    PromptExecutionError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
)

A, B, C = "http://a:1", "http://b:2", "http://c:3"


def make_pool(hub: Hub, urls: Sequence[Any] = ("a:1", "b:2", "c:3"), **kw: Any) -> ComfyPool:
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_cap", 0.2)
    return ComfyPool(list(urls), api_factory=hub.factory, **kw)


def pool_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("comfysync-pool")]


@pytest.fixture(autouse=True)
def no_thread_left():
    yield
    assert pool_threads() == []


def wait_stats(pool: ComfyPool, predicate: Any, timeout: float = WAIT) -> None:
    """Block until ``predicate(pool.stats())`` holds; the pool wakes its waiters on every
    change, so this is no poll."""
    assert pool._wait_until(predicate, timeout), f"stats never matched: {pool.stats()}"


# ---------------------------------------------------------------------------- specs, policies


def test_server_specs_accept_strings_tuples_mappings_and_specs() -> None:
    assert parse_server("a:1") == ServerSpec("a:1")
    spec = parse_server(("a:1", {"tags": ["sdxl", "big"], "weight": 2}))
    assert spec.tags == frozenset({"sdxl", "big"}) and spec.weight == 2.0
    assert parse_server({"url": "b:2", "tags": "x"}).tags == frozenset({"x"})
    with pytest.raises(ValueError):
        parse_server(("a:1", {"colour": "red"}))
    with pytest.raises(ValueError):
        ServerSpec("a:1", weight=0)
    with pytest.raises(TypeError):
        parse_server(42)  # type: ignore[arg-type]


def _view(index: int, in_flight: int = 0, queue: Any = None, weight: float = 1.0) -> ServerView:
    from comfysync._pool.policies import ServerStats

    stats = ServerStats(f"http://s{index}:1", "up", in_flight, 0, 0, 0, None, queue)
    url = f"http://s{index}:1"
    return ServerView(url, frozenset(), weight, in_flight, queue, True, stats, index)


def test_least_busy_orders_by_inflight_then_foreign_queue_then_weight() -> None:
    views = [_view(0, in_flight=1), _view(1, in_flight=0, queue=4), _view(2, in_flight=0)]
    assert least_busy(views, {}).index == 2
    views = [_view(0, queue=3), _view(1, queue=1)]
    assert least_busy(views, {}).index == 1
    # Our own job in the server's queue is not "someone else's work".
    views = [_view(0, in_flight=1, queue=1), _view(1, in_flight=1, queue=2)]
    assert least_busy(views, {}).index == 0
    views = [_view(0, weight=1), _view(1, weight=3)]
    assert least_busy(views, {}).index == 1


def test_round_robin_skips_missing_servers() -> None:
    rr = RoundRobin(3)
    views = [_view(0), _view(1), _view(2)]
    assert [rr(views, {}).index for _ in range(4)] == [0, 1, 2, 0]
    assert rr([views[0], views[2]], {}).index == 2
    assert rr([views[0], views[2]], {}).index == 0


# ---------------------------------------------------------------------------- dispatch


def test_jobs_spread_one_per_server_then_wait_for_a_free_slot() -> None:
    hub = Hub()
    with make_pool(hub) as pool:
        futures = [pool.submit({"text": f"t{i}"}) for i in range(4)]
        jobs = hub.wait_jobs(3)
        assert sorted(j.api.url for j in jobs) == ["a:1", "b:2", "c:3"]
        assert pool.stats()[A].in_flight == 1
        assert not futures[3].running() and futures[3].server is None
        job_b = next(j for j in jobs if j.api.url == "b:2")
        job_b.succeed()
        fourth = hub.wait_jobs(4)[3]
        assert fourth.api.url == "b:2" and fourth.text == "t3"
        for job in hub.open_jobs():
            job.succeed()
        results = [f.result(WAIT) for f in futures]
        assert [r.text["1"] for r in results] == [["t0"], ["t1"], ["t2"], ["t3"]]
        assert futures[3].server == B and futures[3].prompt_id == fourth.prompt_id
        stats = pool.stats()
        assert stats[B].completed == 2 and stats[B].in_flight == 0
        assert stats[B].mean_run_time is not None and stats[B].up


def test_least_busy_avoids_a_server_with_a_long_foreign_queue() -> None:
    hub = Hub()
    with make_pool(hub, max_inflight_per_server=2) as pool:
        warm = pool.submit({"text": "warm"})
        first = hub.wait_jobs(1)[0]
        hub.api("b:2").emit(ev.Status(queue_remaining=7))
        hub.api("c:3").emit(ev.Status(queue_remaining=0))
        first.succeed()
        warm.result(WAIT)  # its slot is free before the future completes
        pool.submit({"text": "x"})
        job = hub.wait_jobs(2)[1]
        # a is free again and has the lowest index; b has a long queue of others' work
        assert job.api.url == "a:1"
        pool.submit({"text": "y"})
        job = hub.wait_jobs(3)[2]
        assert job.api.url == "c:3"
        assert pool.stats()[B].queue_remaining == 7
        for j in hub.open_jobs():
            j.succeed()


def test_round_robin_policy_cycles() -> None:
    hub = Hub(auto=True)
    with make_pool(hub, policy="round_robin", max_inflight_per_server=4) as pool:
        servers = []
        for i in range(6):
            future = pool.submit({"text": str(i)})
            future.result(WAIT)
            servers.append(future.server)
        assert servers == [A, B, C, A, B, C]


def test_custom_policy_sees_views_and_may_wait() -> None:
    hub = Hub()
    seen: List[List[ServerView]] = []
    gate, asked = threading.Event(), threading.Event()

    def only_tagged_fast(servers: Sequence[ServerView], workflow: Any) -> Any:
        seen.append(list(servers))
        asked.set()
        if not gate.is_set():
            return None  # keep the job waiting
        return next(s.url for s in servers if "fast" in s.tags)

    urls = ["a:1", ("b:2", {"tags": ["fast"], "weight": 3}), "c:3"]
    with make_pool(hub, urls, policy=only_tagged_fast) as pool:
        future = pool.submit({"text": "p"})
        assert asked.wait(WAIT)
        assert not hub.jobs
        view = seen[0][1]
        assert (view.url, view.tags, view.weight, view.in_flight, view.up) == (
            B, frozenset({"fast"}), 3.0, 0, True)
        assert view.stats.url == B and view.stats.completed == 0
        gate.set()
        hub.api("a:1").emit(ev.Status(queue_remaining=0))  # any change asks the policy again
        job = hub.wait_jobs(1)[0]
        assert job.api.url == "b:2"
        job.succeed()
        assert future.result(WAIT).prompt_id == job.prompt_id


def test_policy_errors_fail_the_job() -> None:
    hub = Hub()

    def broken(servers: Sequence[ServerView], workflow: Any) -> Any:
        raise RuntimeError("boom")

    with make_pool(hub, policy=broken) as pool:
        with pytest.raises(RuntimeError, match="boom"):
            pool.run_workflow({"text": "x"}, timeout=WAIT)
        with make_pool(hub, policy=lambda s, w: "nowhere:9") as other:
            with pytest.raises(ValueError, match="not a server"):
                other.run_workflow({"text": "x"}, timeout=WAIT)


def test_include_exclude_by_tag_and_url() -> None:
    hub = Hub(auto=True)
    urls = [("a:1", {"tags": ["sdxl"]}), ("b:2", {"tags": ["sdxl", "big"]}), "c:3"]
    with make_pool(hub, urls, max_inflight_per_server=5) as pool:
        for _ in range(3):
            assert pool.submit({}, include="big").result(WAIT) is not None
        assert {j.api.url for j in hub.jobs} == {"b:2"}
        futures = [pool.submit({}, include=["sdxl"], exclude=[B]) for _ in range(2)]
        assert {f.result(WAIT) and f.server for f in futures} == {A}
        assert pool.submit({}, include="c:3").result(WAIT) is not None
        assert hub.jobs[-1].api.url == "c:3"
        with pytest.raises(ValueError, match="no server of the pool matches"):
            pool.submit({}, include="nope")


def test_submit_kwargs_reach_the_client() -> None:
    hub = Hub(auto=True)
    with make_pool(hub, ["a:1"], timeout=3.0) as pool:
        pool.run_workflow({"text": "x"}, timeout=WAIT, front=True)
        kwargs = dict(hub.jobs[0].kwargs)
        assert uuid.UUID(kwargs.pop("prompt_id")).version == 4  # chosen by the pool
        assert kwargs == {"front": True}
        assert hub.apis[0].kwargs == {"timeout": 3.0}


def test_servers_with_model() -> None:
    hub = Hub()
    hub.models[("a:1", "checkpoints")] = ["sd15.safetensors"]
    hub.models[("c:3", "checkpoints")] = ["sd15.safetensors", "sdxl.safetensors"]
    hub.refusing.add("b:2")
    with make_pool(hub) as pool:
        assert pool.servers_with_model("checkpoints", "sd15.safetensors") == [A, C]
        assert pool.servers_with_model("checkpoints", "sdxl.safetensors") == [C]
        assert pool.servers_with_model("loras", "x") == []


# ---------------------------------------------------------------------------- queue, map, close


def test_full_queue_raises_pool_full_error() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1"], max_queued=2) as pool:
        pool.submit({"text": "running"})
        hub.wait_jobs(1)
        pool.submit({"text": "q1"})
        pool.submit({"text": "q2"})
        with pytest.raises(PoolFullError) as info:
            pool.submit({"text": "q3"})
        assert isinstance(info.value, ComfyError) and info.value.max_queued == 2
        assert "max_queued=2" in str(info.value)
        hub.jobs[0].succeed()
        hub.wait_jobs(2)
        last = pool.submit({"text": "q3"})  # room again
        hub.auto = True
        hub.jobs[1].succeed()
        assert last.result(WAIT).text["1"] == ["q3"]
        assert [j.text for j in hub.jobs] == ["running", "q1", "q2", "q3"]


def test_map_keeps_order_and_waits_for_room() -> None:
    hub = Hub(auto=True)
    with make_pool(hub, max_queued=2, max_inflight_per_server=1) as pool:
        results = pool.map([{"text": f"m{i}"} for i in range(12)], timeout=WAIT)
        assert [r.text["1"][0] for r in results] == [f"m{i}" for i in range(12)]


def test_map_return_exceptions_and_first_error() -> None:
    def outcome(job: FakeJob) -> None:  # plays the servers: "bad" fails, the rest succeeds
        if job.text == "bad":
            job.fail(PromptExecutionError(prompt_id=job.prompt_id, node_id="1"))
        else:
            job.succeed()

    with make_pool(Hub(auto=outcome)) as pool:
        out = pool.map([{"text": "ok"}, {"text": "bad"}, {"text": "ok2"}], timeout=WAIT,
                       return_exceptions=True)
        assert out[0].text["1"] == ["ok"] and out[2].text["1"] == ["ok2"]
        assert isinstance(out[1], PromptExecutionError)
        with pytest.raises(PromptExecutionError):
            pool.map([{"text": "bad"}, {"text": "fine"}, {"text": "fine"}], timeout=WAIT)


def test_as_completed_and_future_type() -> None:
    hub = Hub(auto=True)
    with make_pool(hub) as pool:
        futures = [pool.submit({"text": str(i)}) for i in range(9)]
        assert all(isinstance(f, PoolFuture) for f in futures)
        done = list(concurrent.futures.as_completed(futures, timeout=WAIT))
        assert sorted(f.result().text["1"][0] for f in done) == [str(i) for i in range(9)]
        assert {f.server for f in futures} <= {A, B, C}


def test_run_workflow_timeout_withdraws_a_waiting_job() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1"]) as pool:
        pool.submit({"text": "busy"})
        hub.wait_jobs(1)
        started = time.monotonic()
        with pytest.raises(PromptTimeoutError, match="waiting for a free server"):
            pool.run_workflow({"text": "late"}, timeout=0.2)
        assert time.monotonic() - started < 2
        hub.jobs[0].succeed()
        hub.auto = True
        pool.run_workflow({"text": "next"}, timeout=WAIT)
        assert [j.text for j in hub.jobs] == ["busy", "next"]  # the withdrawn job never ran


def test_close_cancels_waiting_fails_running_and_joins_threads() -> None:
    hub = Hub()
    pool = make_pool(hub, ["a:1"])
    running = pool.submit({"text": "r"})
    hub.wait_jobs(1)
    waiting = pool.submit({"text": "w"})
    assert pool_threads()
    pool.close()
    assert pool_threads() == []
    assert waiting.cancelled()
    with pytest.raises(PoolClosedError):
        running.result(0)
    assert all(api.closed for api in hub.apis)
    with pytest.raises(PoolClosedError):
        pool.submit({})
    with pytest.raises(PoolClosedError):
        pool.map([{}])
    pool.close()  # idempotent


def test_close_wait_lets_jobs_finish() -> None:
    hub = Hub()
    pool = make_pool(hub, ["a:1"])
    future = pool.submit({"text": "r"})
    job = hub.wait_jobs(1)[0]
    engine = pool._engine

    def finish_once_closing() -> None:  # the job ends only after close() began to wait
        with engine.lock:
            assert engine.wait_locked(lambda: engine.closed, time.monotonic() + WAIT)
        job.succeed()

    finisher = threading.Thread(target=finish_once_closing)
    finisher.start()
    pool.close(wait=True, timeout=WAIT)
    finisher.join(WAIT)
    assert future.result(0).text["1"] == ["r"]


def test_unused_pool_closes_its_clients() -> None:
    hub = Hub()
    pool = make_pool(hub)
    assert pool_threads() == []  # threads start with the first job
    pool.close()
    assert all(api.closed for api in hub.apis) and len(hub.apis) == 3
    assert "closed" in repr(pool)


# ---------------------------------------------------------------------------- health, failover


def test_user_errors_are_not_retried() -> None:
    hub = Hub()
    hub.submit_errors["a:1"] = PromptValidationError({"message": "bad"}, {}, url="x")
    with make_pool(hub, ["a:1", "b:2"], policy="round_robin") as pool:
        with pytest.raises(PromptValidationError):
            pool.run_workflow({"text": "v"}, timeout=WAIT)
        future = pool.submit({"text": "e"})
        job = hub.wait_jobs(1)[0]
        assert job.api.url == "b:2"
        job.fail(PromptExecutionError(prompt_id=job.prompt_id, node_id="3"))
        with pytest.raises(PromptExecutionError):
            future.result(WAIT)
        assert len(hub.jobs) == 1
        stats = pool.stats()
        assert stats[A].failed == 1 and stats[B].failed == 1 and stats[B].up


def test_refused_server_is_skipped_and_used_again_when_back() -> None:
    hub = Hub(auto=True)
    hub.refusing.add("a:1")
    with make_pool(hub, ["a:1", "b:2"]) as pool:
        future = pool.submit({"text": "x"})
        assert future.result(WAIT).text["1"] == ["x"]
        assert future.server == B and future.attempts == 2
        stats = pool.stats()
        assert stats[A].state == "down" and "refused" in (stats[A].last_error or "")
        assert stats[A].lost == 0  # nothing had been accepted there
        # While a is down every job goes to b; probes keep trying a with backoff.
        assert [pool.submit({}).result(WAIT) and hub.jobs[-1].api.url for _ in range(3)] == [
            "b:2"] * 3
        hub.wait_until(lambda: hub.connects.count("a:1") >= 3)
        hub.refusing.discard("a:1")
        wait_stats(pool, lambda s: s[A].up)
        futures = [pool.submit({"text": str(i)}) for i in range(4)]
        for f in futures:
            f.result(WAIT)
        assert A in {f.server for f in futures}


def test_lost_prompt_is_resubmitted_elsewhere_exactly_once() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], policy="round_robin") as pool:
        future = pool.submit({"text": "L"})
        first = hub.wait_jobs(1)[0]
        first.fail(PromptLostError("server restarted", prompt_id=first.prompt_id))
        second = hub.wait_jobs(2)[1]
        assert second.api.url == "b:2" and second.text == "L"
        second.succeed()
        assert future.result(WAIT).prompt_id == second.prompt_id
        assert future.attempts == 2 and future.server == B
        stats = pool.stats()
        assert stats[A].lost == 1 and stats[A].up  # lost, but the server itself answered
        assert stats[B].completed == 1


def test_retries_exhausted_raise_prompt_lost_error() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], retries=1) as pool:
        future = pool.submit({"text": "L"})
        for n in (1, 2):
            job = hub.wait_jobs(n)[n - 1]
            job.fail(PromptLostError("gone", prompt_id=job.prompt_id))
        with pytest.raises(PromptLostError, match="no server can run it") as info:
            future.result(WAIT)
        assert isinstance(info.value.__cause__, PromptLostError)
        assert info.value.prompt_id == hub.jobs[1].prompt_id
        assert len(hub.jobs) == 2


def test_all_servers_down_fails_within_bounded_time() -> None:
    hub = Hub()
    hub.refusing.update({"a:1", "b:2", "c:3"})
    with make_pool(hub, wait_for_server=0.5, retries=5) as pool:
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError) as info:
            pool.run_workflow({"text": "x"})
        assert time.monotonic() - started < 3
        message = str(info.value)
        assert "refused" in message
        assert all(not s.up for s in pool.stats().values())
        # None ever answered: a job submitted now fails at once too, naming every server.
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError, match="no server of the pool answers") as info:
            pool.run_workflow({"text": "y"})
        assert time.monotonic() - started < 3
        assert all(url in str(info.value) for url in (A, B, C))


def test_servers_that_all_refuse_fail_fast_with_default_settings() -> None:
    hub = Hub()
    hub.refusing.update({"a:1", "b:2"})
    with make_pool(hub, ["a:1", "b:2"]) as pool:  # wait_for_server=30, retries=2
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError) as info:
            pool.run_workflow({"text": "x"})
        assert time.monotonic() - started < 3
        assert A in str(info.value) and B in str(info.value)
        assert "refused" in str(info.value)


def test_servers_that_were_up_get_wait_for_server_to_come_back() -> None:
    hub = Hub(auto=True)
    with make_pool(hub, ["a:1", "b:2"], wait_for_server=0.5) as pool:
        pool.run_workflow({"text": "warm"}, timeout=WAIT)
        wait_stats(pool, lambda s: s[A].up or s[B].up)
        hub.refusing.update({"a:1", "b:2"})
        for url in ("a:1", "b:2"):
            hub.api(url).emit(ev.ReconnectionFailed(attempts=1))
        wait_stats(pool, lambda s: all(v.state == "down" for v in s.values()))
        started = time.monotonic()
        with pytest.raises(ComfyConnectionError, match="wait_for_server"):
            pool.run_workflow({"text": "y"})
        assert 0.3 < time.monotonic() - started < 3


def test_connection_error_mid_job_marks_down_and_fails_over() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], policy="round_robin") as pool:
        future = pool.submit({"text": "J"})
        first = hub.wait_jobs(1)[0]
        old_api = first.api
        first.fail(ComfyConnectionError("socket gone"))
        second = hub.wait_jobs(2)[1]
        assert second.api.url == "b:2"
        second.succeed()
        assert future.result(WAIT).text["1"] == ["J"]
        hub.wait_until(lambda: old_api.closed)  # the pool dropped the broken client
        wait_stats(pool, lambda s: s[A].up)  # and a fresh one connected (probe)
        assert hub.api("a:1") is not old_api
        hub.wait_until(lambda: ("cancel", "a:1", [first.prompt_id]) in hub.removals)


def test_disconnect_beyond_failover_after_moves_jobs() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], policy="round_robin", failover_after=0.2) as pool:
        futures = [pool.submit({"text": "a-job"}), pool.submit({"text": "b-job"})]
        on_a, on_b = sorted(hub.wait_jobs(2), key=lambda j: j.api.url)
        hub.api("a:1").emit(ev.Disconnected(reason="test"))
        wait_stats(pool, lambda s: s[A].state in ("reconnecting", "down"))
        on_b.succeed()  # frees b's slot
        moved = hub.wait_jobs(3)[2]  # after failover_after, a's job goes to b
        assert moved.text == "a-job" and moved.api.url == "b:2"
        moved.succeed()
        assert [f.result(WAIT).text["1"][0] for f in futures] == ["a-job", "b-job"]
        assert futures[0].server == B
        # The abandoned client is dropped (it fails its jobs) by a's thread after it handed
        # the job over, so this may come after the moved job ran: waited for, not assumed.
        hub.wait_until(lambda: on_a.api.closed)
        assert pool.stats()[A].lost == 1 and futures[0].attempts == 2
        assert hub.pings == []  # a client with a socket is never pinged: its events tell


def test_short_disconnect_keeps_jobs_in_place() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], failover_after=30) as pool:
        future = pool.submit({"text": "stay"})
        job = hub.wait_jobs(1)[0]
        api = job.api
        api.emit(ev.Disconnected())
        wait_stats(pool, lambda s: s[A].state == "reconnecting")
        assert not pool.servers()[0].up
        api.emit(ev.Reconnected(attempt=1))
        wait_stats(pool, lambda s: s[A].up)
        job.succeed()
        assert future.result(WAIT).prompt_id == job.prompt_id and len(hub.jobs) == 1


def test_reconnection_failed_marks_down_at_once() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], failover_after=30, policy="round_robin") as pool:
        future = pool.submit({"text": "f"})
        job = hub.wait_jobs(1)[0]
        job.api.emit(ev.Disconnected())
        job.api.emit(ev.ReconnectionFailed(attempts=3))
        moved = hub.wait_jobs(2)[1]
        assert moved.api.url == "b:2"
        moved.succeed()
        assert future.result(WAIT).prompt_id == moved.prompt_id


def test_http_tracked_server_that_stops_answering_fails_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="comfysync.pool")
    hub = Hub()
    pool_args = dict(tracker="http", failover_after=0.3, policy="round_robin")
    with make_pool(hub, ["a:1", "b:2"], **pool_args) as pool:
        future = pool.submit({"text": "h"})
        first = hub.wait_jobs(1)[0]
        assert first.api.url == "a:1" and not first.api.connected  # no socket: no events
        hub.wait_until(lambda: "a:1" in hub.pings)  # busy and socketless: pinged
        hub.refusing.add("a:1")  # a's tracker would poll a dead server forever
        started = time.monotonic()
        moved = hub.wait_jobs(2)[1]
        assert moved.api.url == "b:2" and moved.text == "h"
        assert time.monotonic() - started < 0.3 + 2  # failover_after + a ping or two
        moved.succeed()
        assert future.result(WAIT).prompt_id == moved.prompt_id
        assert future.attempts == 2 and future.server == B
        stats = pool.stats()
        assert stats[A].state == "down" and stats[A].lost == 1
        # The path it took: a ping went unanswered ("reconnecting": no new work), then
        # failover_after without an answer made it "down". Read from the pool's log, as each
        # state lasts too briefly to be sampled by a test thread on a loaded machine, and the
        # failed probes that follow overwrite last_error.
        health = [r.getMessage() for r in caplog.records
                  if r.name == "comfysync.pool" and r.getMessage().startswith(A + " ")]
        assert health[:2] == [
            f"{A} does not answer (connection refused by a:1); no new work until it does",
            f"{A} is down: did not answer health pings for more than 0.3 s",
        ], health
        hub.wait_until(lambda: first.api.closed)  # dropped like a client whose socket died
        hub.refusing.discard("a:1")
        wait_stats(pool, lambda s: s[A].up)  # probed back with a fresh client
        hub.wait_until(lambda: ("cancel", "a:1", [first.prompt_id]) in hub.removals)


def test_http_tracked_server_answering_again_keeps_its_jobs() -> None:
    hub = Hub()
    # failover_after=2: pings every 0.5 s, and an outage of one ping is far from the limit
    with make_pool(hub, ["a:1", "b:2"], tracker="http", failover_after=2) as pool:
        future = pool.submit({"text": "k"})
        job = hub.wait_jobs(1)[0]
        hub.refusing.add("a:1")
        wait_stats(pool, lambda s: s[A].state == "reconnecting")
        assert not pool.servers()[0].up  # no new work meanwhile
        hub.refusing.discard("a:1")
        wait_stats(pool, lambda s: s[A].up)  # the next ping got an answer
        assert pool.stats()[A].queue_remaining == 1  # the ping's status event was booked
        job.succeed()
        assert future.result(WAIT).prompt_id == job.prompt_id and len(hub.jobs) == 1
        assert future.attempts == 1 and pool.stats()[A].lost == 0


def test_all_http_tracked_servers_dying_mid_job_fail_within_bounded_time() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], tracker="http", failover_after=0.2,
                   wait_for_server=0.3) as pool:
        future = pool.submit({"text": "z"})  # no timeout: it must still end
        hub.wait_jobs(1)
        hub.refusing.update({"a:1", "b:2"})
        started = time.monotonic()
        with pytest.raises(PromptLostError, match="no server can run it"):
            future.result(WAIT)
        assert time.monotonic() - started < 0.2 + 0.3 + 3
        assert all(s.state == "down" for s in pool.stats().values())


def test_a_callback_on_a_pool_thread_cannot_block_on_the_pool() -> None:
    hub = Hub(auto=True)
    refused: List[BaseException] = []
    done = threading.Event()

    def blocking_callback(future: Any) -> None:  # runs on the pool's thread
        for call in (lambda: pool.run_workflow({"text": "inner"}),
                     lambda: pool.map([{"text": "inner"}]),
                     lambda: pool.close(wait=True)):
            try:
                call()
            except RuntimeError as exc:
                refused.append(exc)
        done.set()

    with make_pool(hub, ["a:1"]) as pool:
        pool.submit({"text": "outer"}).add_done_callback(blocking_callback)
        assert done.wait(WAIT)
        assert len(refused) == 3 and "ComfyPool thread" in str(refused[0])
        assert pool.run_workflow({"text": "after"}, timeout=WAIT).text["1"] == ["after"]
    assert [j.text for j in hub.jobs] == ["outer", "after"]


def test_a_declining_policy_is_asked_again_after_a_quiet_spell(monkeypatch: Any) -> None:
    import comfysync._pool.engine as engine_module

    monkeypatch.setattr(engine_module, "HEARTBEAT", 0.05)
    hub = Hub(auto=True)
    gate, asked = threading.Event(), threading.Event()

    def when_gate_opens(servers: Sequence[ServerView], workflow: Any) -> Any:
        asked.set()
        return servers[0] if gate.is_set() else None  # depends on what the pool cannot see

    with make_pool(hub, ["a:1"], policy=when_gate_opens) as pool:
        future = pool.submit({"text": "g"})
        assert asked.wait(WAIT)
        gate.set()  # no change of the pool follows: only the quiet spell asks again
        assert future.result(WAIT).text["1"] == ["g"]


def test_a_worker_bug_fails_the_job_instead_of_stranding_it() -> None:
    hub = Hub(auto=True)
    with make_pool(hub, ["a:1"]) as pool:
        api = hub.api("a:1")
        api.submit = lambda workflow, **kw: object()  # type: ignore[method-assign]
        with pytest.raises(AttributeError):  # no prompt_id: the pool's step fails
            pool.run_workflow({"text": "x"}, timeout=WAIT)
        del api.submit  # the worker thread lived on
        assert pool.run_workflow({"text": "y"}, timeout=WAIT).text["1"] == ["y"]


# ---------------------------------------------------------------------------- events


def test_pool_on_delivers_events_with_the_server_url() -> None:
    hub = Hub()
    got: List[Any] = []
    with make_pool(hub, ["a:1", "b:2"]) as pool:
        sub = pool.on("progress", lambda event, url: got.append((event.value, url)))
        hub.api("a:1").emit(ev.Progress(value=1, max=2, node="3", prompt_id="p"))
        hub.api("b:2").emit(ev.Progress(value=2, max=2, node="3", prompt_id="q"))
        hub.api("b:2").emit(ev.Status(queue_remaining=0))
        assert got == [(1, A), (2, B)]
        # A client made after a failure gets the subscription too.
        hub.refusing.add("a:1")
        pool.submit({"text": "x"}, include="a:1")
        wait_stats(pool, lambda s: s[A].state == "down")
        hub.refusing.discard("a:1")
        wait_stats(pool, lambda s: s[A].up)  # a fresh client, connected by a probe
        assert len([a for a in hub.apis if a.url == "a:1"]) >= 2
        hub.api("a:1").emit(ev.Progress(value=5, max=5, node="1"))
        assert got[-1] == (5, A)
        sub.cancel()
        hub.api("b:2").emit(ev.Progress(value=9, max=9, node="1"))
        assert got[-1] == (5, A)
        def everything(event: ev.Event, url: str) -> None:
            got.append((event.type, url))

        pool.on("*", everything)
        hub.api("b:2").emit(ev.Status(queue_remaining=1))
        assert got[-1] == ("status", B)
        pool.off("*", everything)
        hub.api("b:2").emit(ev.Progress(value=9, max=9, node="1"))
        assert got[-1] == ("status", B)


def test_a_job_limited_to_a_busy_server_does_not_block_the_others() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"]) as pool:
        first = pool.submit({"text": "1"}, include="a:1")
        hub.wait_jobs(1)
        second = pool.submit({"text": "2"}, include="a:1")  # waits for a
        third = pool.submit({"text": "3"})  # behind it in the queue, but b is free
        job3 = hub.wait_jobs(2)[1]
        assert job3.text == "3" and job3.api.url == "b:2"
        assert not second.running()
        hub.auto = True
        for job in hub.open_jobs():
            job.succeed()
        assert [f.result(WAIT).text["1"][0] for f in (first, second, third)] == ["1", "2", "3"]
        assert second.server == A


def test_return_future_is_refused() -> None:
    hub = Hub()
    with make_pool(hub) as pool:
        with pytest.raises(TypeError, match="return_future"):
            pool.submit({}, return_future=False)


# ---------------------------------------------------------------------------- exactly once

def test_a_job_moved_elsewhere_is_removed_from_its_server_before_it_is_resubmitted() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], policy="round_robin", failover_after=0.2) as pool:
        future = pool.submit({"text": "m"})
        first = hub.wait_jobs(1)[0]
        assert first.api.url == "a:1" and first.prompt_id == first.kwargs["prompt_id"]
        hub.api("a:1").emit(ev.Disconnected(reason="test"))  # its HTTP still answers
        second = hub.wait_jobs(2)[1]
        # Removed (dequeued, interrupted if running) before the job went to b.
        assert ("cancel", "a:1", [first.prompt_id]) in hub.removals
        assert second.api.url == "b:2"
        assert second.prompt_id == first.prompt_id  # one id wherever the job goes …
        second.fail(PromptLostError("b forgot it", prompt_id=second.prompt_id))
        third = hub.wait_jobs(3)[2]  # a or b: both saw it
        assert third.prompt_id != first.prompt_id  # … but a fresh one where it was before
        third.succeed()
        assert future.result(WAIT).prompt_id == third.prompt_id == future.prompt_id


def test_an_unanswered_submit_is_removed_when_its_server_answers_again() -> None:
    hub = Hub(auto=lambda job: job.succeed() if job.api.url == "b:2" else None)
    hub.lose_answers.add("a:1")  # a queues it; the client never learns (its check fails too)
    with make_pool(hub, ["a:1", "b:2"]) as pool:
        future = pool.submit({"text": "u"})
        assert future.result(WAIT).text["1"] == ["u"] and future.server == B
        on_a = hub.jobs[0]
        assert on_a.api.url == "a:1"
        # The probe finds a back: the copy queued there is cancelled, not left to run.
        hub.wait_until(lambda: ("cancel", "a:1", [on_a.prompt_id]) in hub.removals)
        assert on_a.cancelled


def test_submit_with_a_known_prompt_id_follows_it_instead_of_running_it_again() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"]) as pool:
        prompt_id = str(uuid.uuid4())
        first = pool.submit({"text": "k"}, prompt_id=prompt_id)
        job = hub.wait_jobs(1)[0]
        assert job.prompt_id == prompt_id
        again = pool.submit({"text": "k"}, prompt_id=prompt_id)  # e.g. a redelivered task
        assert hub.attached == [(job.api.url, prompt_id)] and len(hub.jobs) == 1
        assert again.server == first.server and again.prompt_id == prompt_id
        job.succeed()
        assert again.result(WAIT).prompt_id == first.result(WAIT).prompt_id == prompt_id
        assert len(hub.jobs) == 1
        with pytest.raises(ValueError):
            pool.submit({}, prompt_id="ABC")
        with pytest.raises(TypeError, match="prompt_id"):
            pool.map([{}, {}], prompt_id=prompt_id)


def test_submit_with_an_id_looks_once_per_server_and_attach_looks_carefully() -> None:
    """pool.submit(prompt_id=) asks every server with one look (settle=False: no waiting for
    a second "absent"); pool.attach keeps the careful two-answer rule on every server."""
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2", "c:3"]) as pool:
        prompt_id = str(uuid.uuid4())
        pool.submit({"text": "x"}, prompt_id=prompt_id)
        hub.wait_jobs(1)
        assert sorted(hub.lookups) == [(u, prompt_id, False) for u in ("a:1", "b:2", "c:3")]
        missing = str(uuid.uuid4())
        with pytest.raises(PromptLostError):
            pool.attach(missing)
        assert sorted(x for x in hub.lookups if x[1] == missing) == [
            (u, missing, True) for u in ("a:1", "b:2", "c:3")]


def test_lookups_by_id_ask_the_servers_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server's answer waits until all three were asked: a lookup that asked them one
    after another would break the barrier (BrokenBarrierError → counted unasked) instead."""
    from _poolfakes import FakeApi

    barrier = threading.Barrier(3, timeout=WAIT)
    real_attach = FakeApi.attach

    def attach(self: Any, prompt_id: str, *, settle: bool = True) -> Any:
        barrier.wait()
        return real_attach(self, prompt_id, settle=settle)

    monkeypatch.setattr(FakeApi, "attach", attach)
    hub = Hub(auto=True)
    with make_pool(hub, ["a:1", "b:2", "c:3"]) as pool:
        with pytest.raises(PromptLostError) as info:
            pool.attach(str(uuid.uuid4()))
        assert "could not ask" not in str(info.value)
        assert not [t for t in threading.enumerate() if t.name.startswith("comfysync-lookup")]
        barrier.reset()
        prompt_id = str(uuid.uuid4())
        assert pool.run_workflow({"text": "p"}, timeout=WAIT, prompt_id=prompt_id).text
        assert len(hub.lookups) == 6 and len(hub.jobs) == 1


def test_pool_attach_asks_every_server() -> None:
    hub = Hub()
    with make_pool(hub, ["a:1", "b:2"], policy="round_robin") as pool:
        pool.submit({"text": "1"})
        pool.submit({"text": "2"})
        on_b = [j for j in hub.wait_jobs(2) if j.api.url == "b:2"][0]
        assert pool.attach(on_b.prompt_id) is on_b
        hub.refusing.add("b:2")
        with pytest.raises(PromptLostError, match="could not ask") as info:
            pool.attach(str(uuid.uuid4()))
        assert A in str(info.value) and B in str(info.value)
