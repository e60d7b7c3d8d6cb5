"""The pool never runs a job twice, against real FakeComfyUI servers: a POST /prompt whose
answer is lost (loopback forwarder) is resolved on its server, which is not marked down; a
job moved to another server is first removed from the one it leaves; caller-chosen prompt ids
pass through, and a known id is followed instead of run again (``submit``/``attach``).
Executions are counted on the servers."""

from __future__ import annotations

import uuid
from typing import Any, Dict, Iterator, List

import pytest
import requests
from _forwarder import BAD_GATEWAY, Forwarder

from comfysync import ComfyPool
from comfysync.errors import PromptLostError
from comfysync.testing import FakeComfyUI

WAIT = 30.0


def text_job(text: str) -> Dict[str, Any]:
    return {"1": {"class_type": "ProbeText", "inputs": {"text": text}}}


def sleep_job(seconds: float, seed: int) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": seed}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": f"slept-{seed}", "image": ["2", 0]}},
    }


@pytest.fixture
def two() -> Iterator[List[FakeComfyUI]]:
    started = [FakeComfyUI().start() for _ in range(2)]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def forwarder(two: List[FakeComfyUI]) -> Iterator[Forwarder]:
    fwd = Forwarder(two[0].port)
    try:
        yield fwd
    finally:
        fwd.close()


def make_pool(urls: List[str], **kw: Any) -> ComfyPool:
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_cap", 0.2)
    kw.setdefault("timeout", 5.0)
    return ComfyPool(urls, **kw)


@pytest.mark.parametrize("reply", [None, BAD_GATEWAY], ids=["reset", "502"])
def test_lost_answer_to_post_prompt_runs_once_and_keeps_the_server_up(
    two: List[FakeComfyUI], forwarder: Forwarder, reply: Any
) -> None:
    first, second = two
    with make_pool([forwarder.url, second.url]) as pool:
        forwarder.lose_prompt_answers(1, reply)
        result = pool.run_workflow(text_job("once"), timeout=WAIT)
        assert forwarder.lost == 1
        assert result.text["1"] == ["once"]
        assert first.executions() == {result.prompt_id: 1}
        assert second.executions() == {}
        stats = pool.stats()
        assert stats[forwarder.url].state == "up" and stats[forwarder.url].lost == 0
        assert stats[forwarder.url].completed == 1


def test_caller_chosen_prompt_id_passes_through_and_runs_once(
    two: List[FakeComfyUI],
) -> None:
    prompt_id = str(uuid.uuid4())
    with make_pool([s.url for s in two]) as pool:
        result = pool.run_workflow(text_job("mine"), timeout=WAIT, prompt_id=prompt_id)
        assert result.prompt_id == prompt_id
        # The same id again (a task delivered twice): followed where it ran, not run again.
        future = pool.submit(text_job("mine"), prompt_id=prompt_id)
        again = future.result(WAIT)
        assert again.prompt_id == prompt_id and again.text["1"] == ["mine"]
        runs = [s.executions().get(prompt_id, 0) for s in two]
        assert sorted(runs) == [0, 1]
        assert future.server == two[runs.index(1)].url
        with pytest.raises(ValueError):
            pool.submit(text_job("x"), prompt_id="not-a-uuid")


def test_attach_looks_on_every_server(two: List[FakeComfyUI]) -> None:
    first, second = two
    prompt_id = str(uuid.uuid4())
    body = {"prompt": text_job("elsewhere"), "prompt_id": prompt_id}
    assert requests.post(f"{second.url}/prompt", json=body, timeout=5).status_code == 200
    with make_pool([first.url, second.url]) as pool:
        job = pool.attach(prompt_id)
        assert job.wait(WAIT).text["1"] == ["elsewhere"]
        missing = str(uuid.uuid4())
        with pytest.raises(PromptLostError, match="no server of the pool has") as info:
            pool.attach(missing)
        assert first.url in str(info.value) and second.url in str(info.value)
    assert second.executions() == {prompt_id: 1} and first.executions() == {}


def test_a_job_leaving_a_server_is_first_removed_from_it(two: List[FakeComfyUI]) -> None:
    first, second = two
    prompt_id = str(uuid.uuid4())
    with make_pool([first.url, second.url], failover_after=0.5) as pool:
        future = pool.submit(sleep_job(3.0, seed=1), prompt_id=prompt_id)
        running = first.wait_for_running(timeout=WAIT)
        # The socket to the first server goes and cannot come back; HTTP still answers.
        first.refuse_websockets(None)
        first.drop_websockets()
        result = future.result(WAIT)
        assert future.server == second.url and result.text["3"][0] == "slept-1"
        # It was interrupted on the first server, not left to run to its end there.
        first.wait_until(lambda: running in first.history(), timeout=WAIT)
        messages = [m[0] for m in first.history()[running]["status"]["messages"]]
        assert "execution_interrupted" in messages
        assert first.executions() == {running: 1} == {prompt_id: 1}
        assert second.executions() == {result.prompt_id: 1} == {prompt_id: 1}
        first.accept_websockets()
        # Found by its id where it succeeded, not where it was interrupted; a second
        # submission with that id (a redelivered task) runs nothing.
        assert pool.attach(prompt_id).wait(WAIT).text["3"][0] == "slept-1"
        again = pool.submit(sleep_job(3.0, seed=1), prompt_id=prompt_id)
        assert again.result(WAIT).prompt_id == prompt_id and again.server == second.url
        assert first.executions() == second.executions() == {prompt_id: 1}
