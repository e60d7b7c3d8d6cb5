"""comfysync.celery end to end: a real redis-server, two real ``celery worker`` processes
(prefork, four pool processes each) and two FakeComfyUI processes, all on 127.0.0.1.

Executions are counted by the servers (``GET /fake/executions``: how many times each prompt
started executing), so "exactly once" is checked where it happens.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from _celery_procs import FakeServerProcess, Proc, free_port
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from comfysync import ComfyApi
from comfysync.celery import SUBMITTING, ComfyTaskError, prompt_id_for

pytestmark = pytest.mark.slow

TASK = "comfysync.run_workflow"
WAIT = 30.0


def workflow(tag: str, seconds: float = 0.0, steps: int = 1, fail: bool = False) -> Dict[str, Any]:
    """EmptyImage → ProbeProgress (``steps`` updates over ``seconds``) → (ProbeFail →)
    SaveImage, and a ProbeText output."""
    wf: Dict[str, Any] = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeProgress",
              "inputs": {"image": ["1", 0], "steps": steps, "preview": "none",
                         "seed": zlib.crc32(tag.encode()),
                         "delay_ms": int(seconds * 1000 / steps)}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "celery"}},
        "4": {"class_type": "ProbeText", "inputs": {"text": tag}},
    }
    if fail:
        wf["5"] = {"class_type": "ProbeFail", "inputs": {"image": ["2", 0], "message": "boom"}}
        wf["3"]["inputs"]["images"] = ["5", 0]
    return wf


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "") -> Any:
    """Check ``predicate`` until it holds (bounded); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)


def wait_for_log(workers: List[Proc], text: str) -> None:
    """Wait (bounded) until one of ``workers`` has logged ``text``."""
    wait_until(lambda: any(text in w.output(last=100000) for w in workers),
               what=f"the worker log line {text!r}")


class Cluster:
    def __init__(self, app: Celery, servers: List[FakeServerProcess], workers: List[Proc]):
        self.app = app
        self.servers = servers
        self.workers = workers

    def executions(self, prompt_id: str) -> int:
        return sum(s.executions(prompt_id).get(prompt_id, 0) for s in self.servers)

    def server_running(self, prompt_id: str) -> Optional[FakeServerProcess]:
        for server in self.servers:
            if server.executions(prompt_id).get(prompt_id):
                return server
        return None

    def worker_output(self) -> str:
        return "\n".join(w.output(last=100000) for w in self.workers)

    def wait_for_log(self, text: str) -> None:
        """Wait (bounded) until a worker has logged ``text``: a worker logs before it stores
        the task's result, but the test's reader thread may get the line later."""
        wait_for_log(self.workers, text)

    def history_status(self, server: FakeServerProcess, prompt_id: str) -> Optional[str]:
        with ComfyApi(server.url, tracker="http") as api:
            entry = api.get_history(prompt_id)
        return entry.status_str if entry is not None else None

    def send(self, wf: Dict[str, Any], **options: Any) -> Any:
        return self.app.send_task(TASK, args=[wf], **options)


@pytest.fixture(scope="module")
def cluster(
    redis_url: str,
    start_fake_server: Callable[..., FakeServerProcess],
    start_worker: Callable[..., Proc],
) -> Iterator[Cluster]:
    servers = [start_fake_server(), start_fake_server()]
    urls = [s.url for s in servers]
    workers = [start_worker("w1", urls, concurrency=4), start_worker("w2", urls, concurrency=4)]
    app = Celery("comfysync-tests-client", broker=redis_url,
                 backend=redis_url[: redis_url.rindex("/")] + "/1")
    app.conf.broker_connection_retry_on_startup = True
    try:
        yield Cluster(app, servers, workers)
    finally:
        app.close()


def test_hundred_tasks_over_two_workers_and_two_servers(cluster: Cluster) -> None:
    results = [cluster.send(workflow(f"t{i}")) for i in range(100)]
    docs = [r.get(timeout=60) for r in results]
    urls = {s.url for s in cluster.servers}
    for i, (res, doc) in enumerate(zip(results, docs)):
        assert doc["prompt_id"] == prompt_id_for(res.id)
        assert doc["status"] == "success" and doc["server"] in urls
        assert doc["text"] == {"4": [f"t{i}"]}
        assert isinstance(doc["duration"], float)
        [file] = doc["files"]
        assert file["node_id"] == "3" and file["type"] == "output" and file["subfolder"] == ""
        assert file["filename"].startswith("celery") and file["url"].startswith(doc["server"])
        assert "saved_to" not in file
    for res in results:
        assert cluster.executions(prompt_id_for(res.id)) == 1
    used = {doc["server"] for doc in docs}
    assert used == urls, "both servers took work"
    per_server = [len(s.executions()) for s in cluster.servers]
    assert sum(per_server) >= 100 and min(per_server) > 0


def test_sigkill_of_a_pool_process_mid_job_is_redelivered_and_attaches(cluster: Cluster) -> None:
    res = cluster.send(workflow("killed", seconds=3.0, steps=30))
    prompt_id = prompt_id_for(res.id)
    wait_until(lambda: cluster.server_running(prompt_id), what="the prompt to start")

    def worker_pid() -> Optional[int]:
        active = cluster.app.control.inspect(timeout=1.0).active() or {}
        for tasks in active.values():
            for task in tasks:
                if task["id"] == res.id:
                    return int(task["worker_pid"])
        return None

    pid = wait_until(worker_pid, what="the task in a worker's active list")
    os.kill(pid, signal.SIGKILL)
    doc = res.get(timeout=WAIT)
    assert doc["prompt_id"] == prompt_id and doc["status"] == "success"
    assert doc["text"] == {"4": ["killed"]}
    assert cluster.executions(prompt_id) == 1
    cluster.wait_for_log(f"task {res.id} may have run before")
    cluster.wait_for_log(f"already has prompt {prompt_id}: following it")


def history_lookups(server: FakeServerProcess, prompt_id: str) -> int:
    """How many times ``server`` was asked whether it has ``prompt_id`` (GET /history/<id>,
    the question a status look ends with for a prompt in neither queue)."""
    return sum(1 for r in server.requests(prompt_id)
               if r["method"] == "GET" and r["path"].endswith(f"/history/{prompt_id}"))


def test_first_delivery_posts_after_one_look_per_server(cluster: Cluster) -> None:
    """A task delivered for the first time does not wait for a second "absent" answer: the
    server that did not get the prompt was asked about it exactly once."""
    res = cluster.send(workflow("first-delivery"))
    doc = res.get(timeout=WAIT)
    prompt_id = prompt_id_for(res.id)
    assert doc["prompt_id"] == prompt_id and cluster.executions(prompt_id) == 1
    (other,) = [s for s in cluster.servers if s.url != doc["server"]]
    assert history_lookups(other, prompt_id) == 1
    assert f"task {res.id} may have run before" not in cluster.worker_output()


def test_redelivered_task_looks_carefully_before_posting(cluster: Cluster) -> None:
    """A task whose earlier attempt recorded SUBMITTING (it died around its POST, which the
    server may still be validating) asks every server until two answers a second apart say
    "absent" before posting: the server that did not get the prompt was asked at least
    twice by that careful lookup, then once more by the submit's own look."""
    task_id = str(uuid.uuid4())
    cluster.app.backend.store_result(task_id, None, SUBMITTING)
    res = cluster.send(workflow("redelivered"), task_id=task_id)
    doc = res.get(timeout=WAIT)
    prompt_id = prompt_id_for(task_id)
    assert doc["prompt_id"] == prompt_id and cluster.executions(prompt_id) == 1
    (other,) = [s for s in cluster.servers if s.url != doc["server"]]
    assert history_lookups(other, prompt_id) >= 3
    cluster.wait_for_log(f"prompt {prompt_id} of an earlier attempt is on no server")


def task_meta(cluster: Cluster, task_id: str, state: str) -> Optional[Dict[str, Any]]:
    """The task's info when its state is ``state`` (None otherwise), from one read."""
    meta = cluster.app.backend.get_task_meta(task_id, cache=False)
    return dict(meta["result"]) if meta["status"] == state else None


def test_progress_then_revoke_cancels_the_prompt_on_the_server(cluster: Cluster) -> None:
    res = cluster.send(workflow("revoked", seconds=30.0, steps=300))
    prompt_id = prompt_id_for(res.id)
    # one read of the task's meta, so its state and info are of the same moment
    meta = wait_until(lambda: task_meta(cluster, res.id, "PROGRESS"), what="a PROGRESS state")
    assert meta["prompt_id"] == prompt_id and meta["node"] == "2" and meta["max"] == 300
    assert 0 < meta["value"] <= 300 and 0 < meta["fraction"] <= 1
    assert meta["current"] == meta["value"] and meta["total"] == 300
    assert meta["percent"] == pytest.approx(meta["fraction"] * 100, abs=0.01)
    server = cluster.server_running(prompt_id)
    assert server is not None and meta["server"] == server.url
    res.revoke(terminate=True)
    wait_until(lambda: cluster.history_status(server, prompt_id) == "error",
               what="the prompt interrupted on the server")
    wait_until(lambda: res.state == "REVOKED", what="the task revoked")
    assert cluster.executions(prompt_id) == 1


def test_soft_time_limit_cancels_the_prompt(cluster: Cluster) -> None:
    res = cluster.send(workflow("slow", seconds=30.0, steps=300), soft_time_limit=2.0)
    prompt_id = prompt_id_for(res.id)
    with pytest.raises(SoftTimeLimitExceeded):
        res.get(timeout=WAIT)
    server = cluster.server_running(prompt_id)
    if server is None:  # cancelled before it started: it must be gone from every queue
        for s in cluster.servers:
            with ComfyApi(s.url, tracker="http") as api:
                queue = api.get_queue()
            assert prompt_id not in {i.prompt_id for i in (*queue.running, *queue.pending)}
    else:
        wait_until(lambda: cluster.history_status(server, prompt_id) == "error",
                   what="the prompt interrupted on the server")
        with ComfyApi(server.url, tracker="http") as api:
            entry = api.get_history(prompt_id)
        assert entry is not None
        assert "execution_interrupted" in [name for name, _ in entry.messages]


def test_execution_error_fails_the_task_with_its_fields_and_no_retry(cluster: Cluster) -> None:
    res = cluster.send(workflow("failing", fail=True))
    prompt_id = prompt_id_for(res.id)
    with pytest.raises(ComfyTaskError) as info:
        res.get(timeout=WAIT)
    err = info.value
    assert err.kind == "execution_error" and err.prompt_id == prompt_id
    assert err.fields["node_id"] == "5" and err.fields["node_type"] == "ProbeFail"
    assert err.fields["exception_message"] == "boom"
    assert "RuntimeError" in (err.fields["exception_type"] or "")
    assert err.server in {s.url for s in cluster.servers}
    assert "boom" in str(err)
    assert res.state == "FAILURE"
    assert cluster.executions(prompt_id) == 1
    assert not [line for line in cluster.worker_output().splitlines()
                if res.id in line and "retry" in line.lower()]


def test_validation_error_fails_without_retry(cluster: Cluster) -> None:
    wf = workflow("invalid")
    del wf["2"]["inputs"]["steps"]  # a required input missing: SaveImage cannot run,
    del wf["4"]  # and no other output is left, so the server refuses the whole prompt
    res = cluster.send(wf)
    with pytest.raises(ComfyTaskError) as info:
        res.get(timeout=WAIT)
    assert info.value.kind == "validation_error"
    assert "2" in info.value.fields["node_errors"]
    assert cluster.executions(prompt_id_for(res.id)) == 0


def test_users_task_with_two_prompts(cluster: Cluster) -> None:
    res = cluster.app.send_task("tests.two_prompts", args=[workflow("x")])
    first, second = res.get(timeout=WAIT)
    assert first["prompt_id"] == prompt_id_for(res.id, 0)
    assert second["prompt_id"] == prompt_id_for(res.id, 1)
    assert first["text"] == {"4": ["first"]} and second["text"] == {"4": ["second"]}
    assert cluster.executions(first["prompt_id"]) == 1
    assert cluster.executions(second["prompt_id"]) == 1


def test_one_server_worker_retries_until_the_server_answers_then_closes_its_client(
    cluster: Cluster,
    start_fake_server: Callable[..., FakeServerProcess],
    start_worker: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    """A worker with one server (a ComfyApi per pool process) whose server is not up yet:
    the task is retried with backoff until it answers; the files are saved; the worker's
    processes close their clients when it shuts down."""
    port = free_port()
    worker = start_worker("single", [f"http://127.0.0.1:{port}"], concurrency=1,
                          queue="single", max_retries=20)
    res = cluster.send(workflow("late"), queue="single", kwargs={"save_to": str(tmp_path)})
    wait_until(lambda: f"task {res.id}: " in worker.output(last=200)
               and "retry 1/20" in worker.output(last=200), what="a first retry")
    server = start_fake_server(port=port)
    doc = res.get(timeout=WAIT)
    assert doc["server"] == server.url and doc["status"] == "success"
    [file] = doc["files"]
    saved = Path(file["saved_to"])
    assert saved.parent == tmp_path / doc["prompt_id"]
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert server.executions(doc["prompt_id"]) == {doc["prompt_id"]: 1}
    worker.stop()
    assert worker.popen.returncode == 0
    assert "closing the comfysync client of process" in worker.output(last=100000)


def test_sigkill_with_one_server_attaches_through_the_client(
    cluster: Cluster,
    start_fake_server: Callable[..., FakeServerProcess],
    start_worker: Callable[..., Proc],
) -> None:
    """The same redelivery with a one-server worker (a ComfyApi per pool process): the new
    attempt looks for the prompt carefully, finds it on the server and follows it."""
    server = start_fake_server()
    worker = start_worker("one", [server.url], concurrency=1, queue="one")
    res = cluster.send(workflow("killed-one", seconds=3.0, steps=30), queue="one")
    prompt_id = prompt_id_for(res.id)
    wait_until(lambda: server.executions(prompt_id)[prompt_id], what="the prompt to start")
    match = wait_until(lambda: re.search(r"ForkPoolWorker-\d+\] comfysync client for process "
                                         r"(\d+)", worker.output()), what="the pool process")
    os.kill(int(match.group(1)), signal.SIGKILL)
    doc = res.get(timeout=WAIT)
    assert doc["prompt_id"] == prompt_id and doc["server"] == server.url
    assert doc["text"] == {"4": ["killed-one"]}
    assert server.executions(prompt_id) == {prompt_id: 1}
    # the new attempt looked carefully (an earlier one recorded SUBMITTING) and found it
    wait_for_log([worker], f"task {res.id} may have run before")
    wait_for_log([worker], f"prompt {prompt_id} of an earlier attempt found: following it")
