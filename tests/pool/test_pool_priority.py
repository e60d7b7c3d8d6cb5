"""Per-server priority and capacity: a pool prefers its high-priority servers (local GPUs) and
overflows to lower ones (a cloud deployment) only while the preferred ones are busy or down."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import pytest
from _poolfakes import WAIT, Hub

from comfysync import ComfyPool
from comfysync._pool.policies import ServerSpec, parse_server
from comfysync.testing import FakeComfyUI

LOCAL_1, LOCAL_2, CLOUD = "http://l1:1", "http://l2:2", "http://cloud:3"


def tiered_pool(hub: Hub, **kw: Any) -> ComfyPool:
    servers = [
        ("l1:1", {"priority": 1}),
        ("l2:2", {"priority": 1}),
        ("cloud:3", {"priority": 0, "max_inflight": 3}),
    ]
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_cap", 0.2)
    return ComfyPool(servers, api_factory=hub.factory, **kw)


def test_priority_and_max_inflight_are_server_options() -> None:
    spec = parse_server(("cloud:3", {"priority": -1, "max_inflight": 8}))
    assert (spec.priority, spec.max_inflight) == (-1, 8)
    assert parse_server({"url": "a:1", "priority": 2}).priority == 2
    assert ServerSpec("a:1").priority == 0 and ServerSpec("a:1").max_inflight is None
    with pytest.raises(ValueError, match="did you mean 'priorty' → 'priority'"):
        parse_server(("a:1", {"priorty": 1}))
    with pytest.raises(ValueError, match="max_inflight"):
        ServerSpec("a:1", max_inflight=0)
    with pytest.raises(ValueError, match="priority"):
        ServerSpec("a:1", priority=1.5)  # type: ignore[arg-type]


def test_local_servers_first_cloud_only_as_overflow() -> None:
    hub = Hub()
    with tiered_pool(hub) as pool:
        first = [pool.submit({"text": str(i)}) for i in range(2)]
        jobs = hub.wait_jobs(2)
        assert sorted(j.api.url for j in jobs) == ["l1:1", "l2:2"]
        # Both local servers busy: the overflow goes to the cloud, up to its own max_inflight.
        overflow = [pool.submit({"text": f"o{i}"}) for i in range(4)]
        jobs = hub.wait_jobs(5)
        assert [j.api.url for j in jobs[2:]] == ["cloud:3"] * 3
        views = {v.url: v for v in pool.servers()}
        assert views[CLOUD].in_flight == 3 and views[CLOUD].priority == 0
        assert views[LOCAL_1].priority == 1
        # A local slot frees: the waiting job takes it rather than waiting for the cloud.
        jobs[0].succeed()
        sixth = hub.wait_jobs(6)[5]
        assert sixth.api.url == jobs[0].api.url
        for j in hub.jobs:
            if not j.future.done():
                j.succeed()
        for f in first + overflow:
            f.result(WAIT)
        assert {f.server for f in first} == {LOCAL_1, LOCAL_2}


def test_local_servers_down_send_everything_to_the_cloud() -> None:
    hub = Hub(auto=True)
    hub.refusing.update({"l1:1", "l2:2"})
    with tiered_pool(hub) as pool:
        results = [pool.submit({"text": str(i)}) for i in range(3)]
        assert {f.result(WAIT) and f.server for f in results} == {CLOUD}


# --------------------------------------------------------------------- real servers

@pytest.fixture
def local_and_cloud() -> Iterator[List[FakeComfyUI]]:
    started = [FakeComfyUI().start() for _ in range(2)]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def prompt(i: int) -> Dict[str, Any]:
    return {"1": {"class_type": "ProbeText", "inputs": {"text": f"job-{i}"}}}


def test_overflow_to_the_lower_priority_server_on_fake_servers(
    local_and_cloud: List[FakeComfyUI],
) -> None:
    local, cloud = local_and_cloud
    servers = [(local.url, {"priority": 10}), (cloud.url, {"priority": 0, "max_inflight": 4})]
    with ComfyPool(servers, timeout=5.0, connect_timeout=5.0) as pool:
        # An idle local server takes every job run one after the other.
        for i in range(3):
            assert pool.run_workflow(prompt(i), timeout=WAIT).text["1"] == [f"job-{i}"]
        assert len(local.executions()) == 3 and cloud.executions() == {}
        # Local busy (its prompt held pending): the next jobs overflow to the cloud.
        local.pause()
        held = pool.submit(prompt(100))
        local.wait_until(lambda: len(local.queue_state()[1]) == 1)
        overflow = [pool.submit(prompt(200 + i)) for i in range(3)]
        for f in overflow:
            f.result(WAIT)
        assert {f.server for f in overflow} == {cloud.url}
        assert len(cloud.executions()) == 3
        local.resume()
        assert held.result(WAIT).text["1"] == ["job-100"] and held.server == local.url
        assert all(n == 1 for s in local_and_cloud for n in s.executions().values())
