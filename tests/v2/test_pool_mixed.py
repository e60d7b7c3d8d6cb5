"""One ComfyPool over a native FakeComfyUI and a comfy-api-proxy (Comfy API v2) in front of
another: both serve jobs, each job runs exactly once, and a v2 member that goes away fails
its jobs over to the native one."""

from __future__ import annotations

import io
from typing import Any, Dict, Iterator

import pytest
from PIL import Image

from comfysync import ComfyPool
from comfysync._workflow.input_files import content_name
from comfysync.testing import FakeComfyUI

from .conftest import Proxy
from .test_api_proxy import image_wf

WAIT = 20.0


@pytest.fixture
def native() -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as server:
        yield server


def _executions(server: FakeComfyUI) -> Dict[str, int]:
    counts: Dict[str, Any] = server.executions()
    return dict(counts)


def test_pool_mixes_native_and_v2_servers(native: FakeComfyUI, upstream: FakeComfyUI,
                                          proxy: Proxy) -> None:
    with ComfyPool([native.url, proxy.url], policy="round_robin",
                   max_inflight_per_server=2) as pool:
        futures = [pool.submit(image_wf(100 + i, seconds=0.2)) for i in range(6)]
        results = [f.result(WAIT) for f in futures]
        servers = {f.server for f in futures}
        for f, r in zip(futures, results):
            assert r.images[0].read().startswith(b"\x89PNG"), f.server
    assert all(r.status == "success" and r.images for r in results)
    assert servers == {native.url, proxy.url}, servers
    runs = list(_executions(native).values()) + list(_executions(upstream).values())
    assert sorted(runs) == [1] * 6  # every job ran once, on one server


def test_a_v2_member_that_goes_away_fails_over(native: FakeComfyUI, upstream: FakeComfyUI,
                                               proxy: Proxy) -> None:
    with ComfyPool([proxy.url, native.url], policy="round_robin", failover_after=2.0,
                   retries=2) as pool:
        assert pool.run_workflow(image_wf(200), timeout=WAIT).status == "success"
        proxy.stop()  # the v2 deployment is gone
        results = [pool.run_workflow(image_wf(201 + i), timeout=WAIT) for i in range(3)]
    assert all(r.status == "success" for r in results)
    assert sum(_executions(native).values()) >= 3


def test_input_bytes_are_uploaded_where_each_job_runs(native: FakeComfyUI, upstream: FakeComfyUI,
                                                      proxy: Proxy) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (12, 34, 56)).save(buffer, format="PNG")
    data = buffer.getvalue()

    def load(seed: int) -> Dict[str, Any]:
        return {
            "1": {"class_type": "LoadImage", "inputs": {"image": data}},
            "2": {"class_type": "ProbeSleep", "inputs": {"image": ["1", 0], "seconds": 0.0,
                                                         "seed": seed}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                       "filename_prefix": "v2/pooled"}},
        }

    with ComfyPool([native.url, proxy.url], policy="round_robin") as pool:
        futures = [pool.submit(load(300 + i)) for i in range(4)]
        results = [f.result(WAIT) for f in futures]
    assert all(r.status == "success" and r.images for r in results)
    assert {f.server for f in futures} == {native.url, proxy.url}
    name = content_name(data)
    assert (native.dirs.input / name).read_bytes() == data  # native: upload_image
    assert any(p.read_bytes() == data for p in upstream.dirs.input.rglob("*"))  # v2: an asset
