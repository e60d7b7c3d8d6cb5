"""Fixtures of the core tests: ``make_api`` builds clients on the test's FakeComfyUI."""

from __future__ import annotations

from typing import Any, Callable, Iterator, List

import pytest

from comfysync import ComfyApi
from comfysync.testing import FakeComfyUI


@pytest.fixture
def make_api(fake_server: FakeComfyUI) -> Iterator[Callable[..., ComfyApi]]:
    """``make_api(tracker="websocket", connect=True, **ComfyApi kwargs)``: a client of the
    test's server with fast reconnects and polling, connected unless ``connect=False``;
    every one is closed at teardown."""
    made: List[ComfyApi] = []

    def make(tracker: str = "websocket", connect: bool = True, **kw: Any) -> ComfyApi:
        kw.setdefault("backoff_base", 0.05)
        kw.setdefault("backoff_cap", 0.2)
        kw.setdefault("poll_interval", (0.02, 0.2))
        api = ComfyApi(fake_server.url, tracker=tracker, **kw)
        made.append(api)
        if connect:
            api.connect(timeout=10)
        return api

    yield make
    for api in made:
        api.close()
