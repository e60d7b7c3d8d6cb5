"""Exactly once across faults: a POST /prompt whose answer is lost, caller-chosen prompt ids,
``attach``, and prompt completion while the socket cannot come back. Against FakeComfyUI,
through a loopback forwarder that drops the answer after the server handled the request;
executions are counted on the server."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, Iterator, List

import pytest
from _core_workflows import sleep_wf, text_wf
from _forwarder import BAD_GATEWAY, Forwarder

from comfysync import ComfyApi
from comfysync import events as ev
from comfysync.errors import ComfyConnectionError, PromptInterruptedError, PromptLostError
from comfysync.testing import FakeComfyUI

WAIT = 30.0
TRACKERS = ["websocket", "http"]


@pytest.fixture
def forwarder(fake_server: FakeComfyUI) -> Iterator[Forwarder]:
    fwd = Forwarder(fake_server.port)
    try:
        yield fwd
    finally:
        fwd.close()


@pytest.fixture
def make_client(fake_server: FakeComfyUI) -> Iterator[Callable[..., ComfyApi]]:
    made: List[ComfyApi] = []

    def make(url: str, tracker: str = "websocket", **kw: Any) -> ComfyApi:
        kw.setdefault("backoff_base", 0.05)
        kw.setdefault("backoff_cap", 0.2)
        kw.setdefault("poll_interval", (0.02, 0.2))
        api = ComfyApi(url, tracker=tracker, **kw)
        made.append(api)
        api.connect(timeout=WAIT)
        return api

    yield make
    for api in made:
        api.close()


def posts_of(server: FakeComfyUI) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and r.path == "/prompt")


@pytest.mark.parametrize("reply", [None, BAD_GATEWAY], ids=["closed", "proxy-502"])
@pytest.mark.parametrize("tracker", TRACKERS)
def test_lost_answer_to_post_prompt_returns_the_result_of_one_execution(
    fake_server: FakeComfyUI, forwarder: Forwarder, make_client: Callable[..., ComfyApi],
    tracker: str, reply: Any,
) -> None:
    api = make_client(forwarder.url, tracker)
    forwarder.lose_prompt_answers(1, reply=reply)
    result = api.run_workflow(text_wf("once", seed=101), timeout=WAIT)
    assert forwarder.lost == 1  # the server handled the POST, the client never saw it
    assert result.text["3"][0] == "once"
    assert fake_server.executions() == {result.prompt_id: 1}
    assert posts_of(fake_server) == 1


def test_prompt_refused_by_a_proxy_before_reaching_the_server_is_posted_again(
    fake_server: FakeComfyUI, make_client: Callable[..., ComfyApi]
) -> None:
    """The 502 came before the server saw the prompt: it is surely absent (asked twice,
    a second apart), then posted again under the same id — one execution."""
    api = make_client(fake_server.url)
    fake_server.fail_route("/prompt", 502, "Bad Gateway", times=1, method="POST")
    result = api.run_workflow(text_wf("second try", seed=102), timeout=WAIT)
    assert result.text["3"][0] == "second try"
    assert fake_server.executions() == {result.prompt_id: 1}
    bodies = [r for r in fake_server.requests if r.method == "POST" and r.path == "/prompt"]
    assert len(bodies) == 2


def test_submit_with_a_known_id_follows_the_prompt_instead_of_running_it_again(
    fake_server: FakeComfyUI, make_client: Callable[..., ComfyApi]
) -> None:
    pid = str(uuid.uuid4())
    first = make_client(fake_server.url)
    job = first.submit(sleep_wf(0.3, seed=103), prompt_id=pid)
    assert job.prompt_id == pid
    # another process (say, a task delivered again) submits the same id while it runs...
    other = make_client(fake_server.url)
    again = other.submit(sleep_wf(0.3, seed=103), prompt_id=pid)
    assert again.wait(WAIT).prompt_id == pid
    assert job.wait(WAIT).text == again.wait(WAIT).text
    assert job.wait(0).text["3"][0] == "slept"
    # ...and after it ended: the job ends at once with the same result
    late = other.submit(sleep_wf(0.3, seed=103), prompt_id=pid)
    assert late.done() and late.wait(0).text == job.wait(0).text
    assert fake_server.executions() == {pid: 1} and posts_of(fake_server) == 1


def test_attach_follows_a_prompt_of_another_client(
    fake_server: FakeComfyUI, make_client: Callable[..., ComfyApi]
) -> None:
    owner = make_client(fake_server.url)
    watcher = make_client(fake_server.url)
    job = owner.submit(sleep_wf(0.4, seed=104, text="watched"))
    attached = watcher.attach(job.prompt_id)
    assert attached.prompt_id == job.prompt_id
    assert attached.wait(WAIT).text == job.wait(WAIT).text
    assert job.wait(0).text["3"][0] == "watched"
    ended = watcher.attach(job.prompt_id)  # already ended: at once
    assert ended.done() and ended.wait(0).prompt_id == job.prompt_id
    with pytest.raises(PromptLostError):
        watcher.attach(str(uuid.uuid4()))
    with pytest.raises(ValueError, match="canonical UUID"):
        watcher.attach("42")
    assert fake_server.executions() == {job.prompt_id: 1}


def test_attach_concludes_absent_from_two_answers_unless_settle_is_false(
    fake_server: FakeComfyUI, make_client: Callable[..., ComfyApi]
) -> None:
    """The careful rule (a prompt posted a moment ago may still be validated) asks twice;
    settle=False trusts one answer, for ids no attempt may have posted moments ago."""
    api = make_client(fake_server.url)

    def lookups(prompt_id: str) -> int:
        return sum(1 for r in fake_server.requests
                   if r.method == "GET" and r.path.endswith(f"/history/{prompt_id}"))

    careful, quick = str(uuid.uuid4()), str(uuid.uuid4())
    with pytest.raises(PromptLostError):
        api.attach(careful)
    assert lookups(careful) >= 2
    with pytest.raises(PromptLostError):
        api.attach(quick, settle=False)
    assert lookups(quick) == 1
    job = api.submit(text_wf("seen"))
    job.wait(WAIT)
    assert api.attach(job.prompt_id, settle=False).wait(0).prompt_id == job.prompt_id


@pytest.mark.comfy_server_options(jobs_api=True)
def test_attached_job_cancels_through_the_jobs_api(
    comfy_server: FakeComfyUI, make_client: Callable[..., ComfyApi]
) -> None:
    owner = make_client(comfy_server.url)
    watcher = make_client(comfy_server.url)
    started = threading.Event()
    job = owner.submit(sleep_wf(30, seed=105), on_event=lambda e: isinstance(
        e, ev.ExecutionStart) and started.set())
    assert started.wait(WAIT)
    attached = watcher.attach(job.prompt_id)
    assert attached.cancel() is True
    with pytest.raises(PromptInterruptedError):
        attached.wait(WAIT)
    with pytest.raises(PromptInterruptedError):
        job.wait(WAIT)
    posted = [r.path for r in comfy_server.requests if r.method == "POST"]
    assert f"/api/jobs/{job.prompt_id}/cancel" in posted


def test_completion_is_polled_while_the_socket_cannot_come_back(
    fake_server: FakeComfyUI, make_client: Callable[..., ComfyApi]
) -> None:
    """The socket drops mid-run and every reconnect is refused: the prompt's end is found
    over HTTP at the polling pace, long before the (here 60 s) watchdog."""
    api = make_client(fake_server.url, watchdog=60.0, backoff_base=0.5, backoff_cap=1.0)
    started = threading.Event()
    job = api.submit(sleep_wf(0.5, seed=106),
                     on_event=lambda e: isinstance(e, ev.ExecutionStart) and started.set())
    assert started.wait(WAIT)
    fake_server.refuse_websockets(None)
    fake_server.drop_websockets()
    assert job.wait(10).text["3"][0] == "slept"
    assert not api.connected


def test_an_unreachable_server_fails_a_submit_at_once(
    make_client: Callable[..., ComfyApi], fake_server: FakeComfyUI
) -> None:
    api = make_client(fake_server.url, tracker="http")
    fake_server.stop()
    with pytest.raises(ComfyConnectionError) as info:
        api.submit(text_wf("never", seed=107))
    assert info.value.request_sent is False
