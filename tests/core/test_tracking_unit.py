"""Tracker logic against an in-memory server (no sockets, no HTTP): registration before POST,
per-prompt state, endings, history retries, reconciliation, polling, cancel, close."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import pytest

from comfysync import events as ev
from comfysync._rest.models import HistoryEntry
from comfysync._tracking.job import PromptJob
from comfysync._tracking.surface import PromptStatus, Submitted
from comfysync._tracking.tracker import Tracker
from comfysync.errors import (
    ComfyConnectionError,
    ComfyHTTPError,
    ComfyTimeoutError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
)

WF = {"1": {"class_type": "EmptyImage", "inputs": {}},
      "2": {"class_type": "SaveImage", "inputs": {}}}


def entry(status: str = "success", outputs: Optional[Dict[str, Any]] = None,
          messages: Optional[List[Any]] = None) -> Dict[str, Any]:
    return {
        "prompt": [0, "x", {}, {}, []],
        "outputs": outputs or {},
        "status": {"status_str": status, "completed": status == "success",
                   "messages": messages or []},
        "meta": {},
    }


class FakeEvents:
    """An event source that is always connected (the tests hand events to the tracker)."""

    alive = connected = authoritative = True

    def start(self, timeout: float) -> None:
        pass

    def stop(self) -> None:
        pass

    def owns_current_thread(self) -> bool:
        return False


class FakeOps:
    """A server surface over dicts; records every call (``post``, ``queue`` — one per status
    question — ``history``, ``cancel``)."""

    def __init__(self) -> None:
        self.running: Set[str] = set()
        self.pending: Set[str] = set()
        self.history: Dict[str, Mapping[str, Any]] = {}
        self.calls: List[Tuple[str, ...]] = []
        self.on_post: Optional[Any] = None  # callable(prompt_id) run inside the POST
        self.post_error: Optional[BaseException] = None
        self.down = 0  # number of next queue/history calls that fail
        self.history_hidden: Dict[str, int] = {}  # prompt id → reads that still see nothing
        self.server_id: Optional[str] = None  # an id the server picks instead of ours
        self.lose_answers = 0  # next POSTs queue the prompt, then fail as if the answer was lost
        self.post_errors: List[BaseException] = []  # raised (in order) before queueing
        self.lock = threading.Lock()
        self.called = threading.Condition(self.lock)
        self.events = FakeEvents()

    def _record(self, *call: str) -> None:
        with self.lock:
            self.calls.append(call)
            self.called.notify_all()

    def wait_calls(self, call: Tuple[str, ...], count: int, timeout: float = 5.0) -> None:
        with self.lock:
            assert self.called.wait_for(lambda: self.calls.count(call) >= count, timeout), (
                f"{call} not made {count} time(s): {self.calls}"
            )

    def submit(self, workflow: Mapping[str, Any], prompt_id: str,
               options: Mapping[str, Any], deadline: Optional[float] = None) -> Submitted:
        self._record("post", prompt_id)
        if self.post_errors:
            raise self.post_errors.pop(0)
        prompt_id = self.server_id or prompt_id
        if self.post_error is None:
            self.pending.add(prompt_id)  # queued before any event of it can be sent
        if self.on_post is not None:
            self.on_post(prompt_id)
        if self.post_error is not None:
            raise self.post_error
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise ComfyConnectionError("connection reset by peer (after sending)")
        return Submitted(prompt_id, 7, {})

    def _maybe_fail(self) -> None:
        with self.lock:
            if self.down > 0:
                self.down -= 1
                raise ComfyConnectionError("server down")

    def status(self, prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        self._record("queue")
        self._maybe_fail()
        running, pending = frozenset(self.running), frozenset(self.pending)
        found: Dict[str, PromptStatus] = {}
        for prompt_id in prompt_ids:
            if prompt_id in running:
                found[prompt_id] = PromptStatus("running")
            elif prompt_id in pending:
                found[prompt_id] = PromptStatus("queued")
            else:
                got = self.result(prompt_id)
                found[prompt_id] = PromptStatus("absent" if got is None else "done", got)
        return found

    def result(self, prompt_id: str) -> Optional[HistoryEntry]:
        self._record("history", prompt_id)
        self._maybe_fail()
        with self.lock:
            hidden = self.history_hidden.get(prompt_id, 0)
            if hidden > 0:
                self.history_hidden[prompt_id] = hidden - 1
                return None
        raw = self.history.get(prompt_id)
        return None if raw is None else HistoryEntry.from_wire(prompt_id, raw)

    def cancel(self, prompt_id: str) -> None:
        self._record("cancel", prompt_id)
        self.pending.discard(prompt_id)

    def finish(self, prompt_id: str, e: Mapping[str, Any]) -> None:
        self.running.discard(prompt_id)
        self.pending.discard(prompt_id)
        self.history[prompt_id] = e


@pytest.fixture
def ops() -> FakeOps:
    return FakeOps()


@pytest.fixture
def make_tracker(ops: FakeOps) -> Iterator[Any]:
    made: List[Tracker] = []

    def make(**kw: Any) -> Tracker:
        kw.setdefault("watchdog", 30.0)
        kw.setdefault("history_delays", (0.01, 0.01, 0.01))
        kw.setdefault("poll_interval", (0.01, 0.05))
        t = Tracker(ops, name="t", **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def run_success_events(t: Tracker, pid: str, output: Optional[Dict[str, Any]] = None) -> None:
    t.handle_event(ev.ExecutionStart(prompt_id=pid, timestamp=1000))
    t.handle_event(ev.ExecutionCached(nodes=("1",), prompt_id=pid, timestamp=1000))
    t.handle_event(ev.Executing(node="2", display_node="2", prompt_id=pid))
    t.handle_event(ev.Progress(value=1, max=2, node="2", prompt_id=pid))
    t.handle_event(ev.Executed(node="2", output=output, prompt_id=pid))
    t.handle_event(ev.ExecutionSuccess(prompt_id=pid, timestamp=3500))
    t.handle_event(ev.Executing(node=None, prompt_id=pid))


def test_job_is_registered_before_post_so_early_events_count(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    out = {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}

    def during_post(pid: str) -> None:  # the whole run happens before POST answers
        assert t.has_unfinished()
        run_success_events(t, pid, out)
        ops.history[pid] = entry(outputs={"2": out})

    ops.on_post = during_post
    job = t.submit(WF, {})
    result = job.wait(timeout=5)
    assert result.prompt_id == job.prompt_id
    assert [f.filename for f in result.images] == ["a.png"]
    assert result.cached_nodes == ("1",)
    assert job.status == "success" and job.done()
    assert job.number == 7
    assert job.future is not None and job.future.result(0) is result
    assert not t.has_unfinished()


def test_refused_post_unregisters_and_reraises(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    ops.post_error = PromptValidationError({"type": "prompt_no_outputs", "message": "no"}, {})
    with pytest.raises(PromptValidationError):
        t.submit(WF, {})
    assert not t.has_unfinished()


def test_outputs_merge_events_and_history_and_timing(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    live = {"text": ["live"]}
    ops.history[pid] = entry(outputs={"3": {"text": ["only in history"]}}, messages=[
        ["execution_start", {"prompt_id": pid, "timestamp": 1000}],
        ["execution_success", {"prompt_id": pid, "timestamp": 3500}],
    ])
    run_success_events(t, pid, live)
    result = job.wait(5)
    assert list(result.outputs) == ["2", "3"]
    assert result.text == {"2": ["live"], "3": ["only in history"]}
    assert result.duration == pytest.approx(2.5)


def test_cached_output_node_with_null_output(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.finish(pid, entry())
    t.handle_event(ev.ExecutionStart(prompt_id=pid, timestamp=1))
    t.handle_event(ev.ExecutionCached(nodes=("1", "2"), prompt_id=pid, timestamp=1))
    t.handle_event(ev.Executed(node="2", output=None, prompt_id=pid))
    t.handle_event(ev.ExecutionSuccess(prompt_id=pid, timestamp=2))
    t.handle_event(ev.Executing(node=None, prompt_id=pid))
    result = job.wait(5)
    assert result.outputs == {} and result.files == ()
    assert result.cached_nodes == ("1", "2")


def test_execution_error_from_event(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    t.handle_event(ev.ExecutionStart(prompt_id=pid, timestamp=1))
    t.handle_event(ev.ExecutionError(
        node_id="2", node_type="ProbeFail", exception_type="RuntimeError",
        exception_message="boom\n", traceback=("  File x\n",), prompt_id=pid, timestamp=5))
    with pytest.raises(PromptExecutionError) as info:
        job.wait(5)
    err = info.value
    assert (err.node_id, err.node_type, err.exception_type) == ("2", "ProbeFail", "RuntimeError")
    assert err.exception_message == "boom" and err.traceback_lines == ["  File x\n"]
    assert job.status == "error"
    assert job.future is not None and isinstance(job.future.exception(0), PromptExecutionError)
    assert ("history", pid) not in ops.calls  # the event alone is final


def test_execution_blocked_is_not_fatal(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    t.handle_event(ev.ExecutionError(node_id="2", exception_type="ExecutionBlocked",
                                     exception_message="Execution Blocked: x", prompt_id=pid))
    assert not job.done()
    ops.finish(pid, entry())
    t.handle_event(ev.ExecutionSuccess(prompt_id=pid, timestamp=2))
    t.handle_event(ev.Executing(node=None, prompt_id=pid))
    assert job.wait(5).status == "success"


def test_interrupted_event(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    t.handle_event(ev.ExecutionInterrupted(node_id="2", node_type="ProbeSleep",
                                           prompt_id=job.prompt_id, timestamp=3))
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(5)
    assert info.value.node_id == "2" and job.status == "interrupted"


def test_history_is_retried_after_success(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.finish(pid, entry(outputs={"2": {"text": ["h"]}}))
    ops.history_hidden[pid] = 2  # written "late"
    t.handle_event(ev.ExecutionSuccess(prompt_id=pid, timestamp=2))
    assert job.wait(5).text == {"2": ["h"]}
    assert ops.calls.count(("history", pid)) == 3


def test_success_without_history_entry_uses_live_outputs(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.pending.discard(pid)
    run_success_events(t, pid, {"text": ["live"]})
    result = job.wait(5)
    assert result.text == {"2": ["live"]} and result.raw == {}


def test_events_of_other_prompts_do_not_leak(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    a, b = t.submit(WF, {}), t.submit(WF, {})
    seen_a: List[ev.Event] = []
    seen_b: List[ev.Event] = []
    a.on("*", seen_a.append)
    b.on("progress", seen_b.append)
    t.handle_event(ev.ExecutionStart(prompt_id=a.prompt_id, timestamp=1))
    t.handle_event(ev.Progress(value=1, max=4, node="2", prompt_id=a.prompt_id))
    t.handle_event(ev.Progress(value=3, max=4, node="2", prompt_id="someone-else"))
    t.handle_event(ev.Status(queue_remaining=2))
    assert [e.type for e in seen_a] == ["execution_start", "progress"]
    assert seen_b == []
    assert a.status == "running" and b.status == "pending"
    assert a.progress.value == 1 and b.progress.value == 0


def test_preview_without_ids_goes_to_the_running_prompt(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    a, b = t.submit(WF, {}), t.submit(WF, {})
    got: List[ev.Event] = []
    a.on(ev.Preview, got.append)
    t.handle_event(ev.ExecutionStart(prompt_id=a.prompt_id, timestamp=1))
    preview = ev.Preview(image=b"jpeg", event_type=1)
    passed_on = t.handle_event(preview)  # what the user's api.on subscriptions get
    assert got == [passed_on] and passed_on.prompt_id == a.prompt_id
    assert passed_on.image == preview.image
    assert a.progress.preview is passed_on and b.progress.preview is None


def test_progress_snapshot(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit({"1": {}, "2": {}, "3": {}, "4": {}}, {})
    pid = job.prompt_id
    t.handle_event(ev.ExecutionCached(nodes=("1",), prompt_id=pid))
    t.handle_event(ev.Executing(node="2", prompt_id=pid))
    t.handle_event(ev.Progress(value=1, max=2, node="2", prompt_id=pid))
    p = job.progress
    assert (p.node, p.value, p.max, p.nodes_done, p.nodes_total) == ("2", 1, 2, 1, 4)
    assert p.fraction == pytest.approx(1.5 / 4)
    t.handle_event(ev.ProgressState(nodes={"2": ev.NodeProgress(2, 2, "finished")}, prompt_id=pid))
    t.handle_event(ev.Executing(node="3", prompt_id=pid))
    assert job.progress.nodes_done == 2 and job.progress.node == "3"
    assert job.progress.nodes["2"].state == "finished"


def test_reconnect_reconciles_a_run_that_ended_while_down(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    t.handle_event(ev.ExecutionStart(prompt_id=pid, timestamp=1))
    ops.finish(pid, entry(outputs={"2": {"text": ["while down"]}}))
    t.on_socket_ready(reconnected=True)
    assert job.wait(5).text == {"2": ["while down"]}
    assert ops.calls.index(("queue",)) < ops.calls.index(("history", pid))


def test_reconcile_finds_errors_and_interrupts_in_history(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    failing, stopped = t.submit(WF, {}), t.submit(WF, {})
    ops.finish(failing.prompt_id, entry("error", messages=[["execution_error", {
        "node_id": "2", "node_type": "ProbeFail", "exception_type": "RuntimeError",
        "exception_message": "x\n", "traceback": ["tb"], "executed": []}]]))
    ops.finish(stopped.prompt_id, entry("error", messages=[["execution_interrupted", {
        "node_id": "2", "node_type": "ProbeSleep", "executed": []}]]))
    t.on_socket_ready(reconnected=True)
    with pytest.raises(PromptExecutionError) as e1:
        failing.wait(5)
    assert e1.value.node_type == "ProbeFail"
    with pytest.raises(PromptInterruptedError):
        stopped.wait(5)
    assert ops.calls.count(("queue",)) == 1  # one GET /queue for both


def test_prompt_in_neither_queue_nor_history_is_lost(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    ops.pending.clear()  # deleted by someone else
    t.on_socket_ready(reconnected=True)
    with pytest.raises(PromptLostError):
        job.wait(5)
    assert job.status == "lost"


def test_still_queued_prompt_keeps_waiting(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    ops.pending.discard(job.prompt_id)
    ops.running.add(job.prompt_id)
    before = ops.calls.count(("queue",))
    t.on_socket_ready(reconnected=True)
    ops.wait_calls(("queue",), before + 1)
    # the tracker thread applies one check before it starts the next: once a second check
    # has asked /queue, the first one's answer ("running") is in the job's state
    t.on_socket_ready(reconnected=True)
    ops.wait_calls(("queue",), before + 2)
    assert job.status == "running" and not job.done()


class GatedOps(FakeOps):
    """A surface whose status reads can be held in flight (``hold``), to request checks
    while one is being answered."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.held = threading.Event()  # a read is in flight, waiting for ``release``
        self.release = threading.Event()

    def status(self, prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        found = super().status(prompt_ids)  # the answer as of the moment it was sent
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            assert self.release.wait(5)
        return found


def test_check_prompt_checks_that_prompt_now() -> None:
    gated = GatedOps()
    t = Tracker(gated, name="t", watchdog=30.0, poll_interval=(30.0, 30.0))
    try:
        job, other = t.submit(WF, {}), t.submit(WF, {})
        gated.finish(job.prompt_id, entry())
        t.check_prompt(job.prompt_id)
        assert job.wait(5).status == "success"
        assert ("history", other.prompt_id) not in gated.calls  # only the one asked about
        t.check_prompt("not-a-prompt-of-ours")  # ignored
    finally:
        t.close()


def test_a_check_requested_while_a_read_is_in_flight_is_not_lost() -> None:
    gated = GatedOps()
    # long poll interval and watchdog: without a sticky request the next check is 30 s away
    t = Tracker(gated, name="t", watchdog=30.0, poll_interval=(30.0, 30.0))
    try:
        job = t.submit(WF, {})
        gated.hold.set()
        t.check_prompt(job.prompt_id)
        assert gated.held.wait(5)  # the read answered "queued" and is in flight
        gated.finish(job.prompt_id, entry())
        t.check_prompt(job.prompt_id)  # e.g. the job's event stream said it ended
        gated.release.set()
        assert job.wait(5).status == "success"
    finally:
        t.close()


def test_a_check_asked_before_the_submit_answer_is_followed_is_not_lost() -> None:
    class EarlyHint(FakeOps):
        """Names the job itself and answers with where it was at once ("running"); its
        event source says the job ended before that answer reaches tracking."""

        tracker: Tracker

        def submit(self, workflow: Mapping[str, Any], prompt_id: str,
                   options: Mapping[str, Any], deadline: Optional[float] = None) -> Submitted:
            job_id = "job-" + prompt_id
            self.finish(job_id, entry())
            self.tracker.check_prompt(job_id)  # e.g. the job's stream, on its own thread
            return Submitted(job_id, assigns_ids=True, status=PromptStatus("running"))

    ops = EarlyHint()
    t = ops.tracker = Tracker(ops, name="t", watchdog=30.0, poll_interval=(30.0, 30.0))
    try:
        job = t.submit(WF, {})
        assert job.wait(5).status == "success"
    finally:
        t.close()


def test_watchdog_checks_a_silent_prompt(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker(watchdog=0.05)
    job = t.submit(WF, {})
    ops.finish(job.prompt_id, entry(outputs={"2": {"text": ["quiet"]}}))
    assert job.wait(5).text == {"2": ["quiet"]}


def test_http_failures_are_retried(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    ops.finish(job.prompt_id, entry())
    ops.down = 2
    t.on_socket_ready(reconnected=True)
    assert job.wait(10).status == "success"


def test_polling_mode_follows_queue_then_history(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker(polling=True)
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.pending.discard(pid)
    ops.running.add(pid)
    # polls follow one another on the tracker thread: when the next poll after this change
    # has asked /queue, the previous one's answer has been applied
    ops.wait_calls(("queue",), ops.calls.count(("queue",)) + 2)
    assert job.status == "running"
    ops.finish(pid, entry(outputs={"2": {"images": [{"filename": "p.png", "type": "output"}]}}))
    result = job.wait(5)
    assert [f.filename for f in result.files] == ["p.png"]
    assert all(c[0] in ("post", "queue", "history") for c in ops.calls)


def test_reconnection_failed_switches_to_polling(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    t.handle_event(ev.ReconnectionFailed(attempts=3))
    assert t.polling
    ops.finish(job.prompt_id, entry())
    assert job.wait(5).status == "success"


def test_timeout_then_later_wait_succeeds(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    with pytest.raises(PromptTimeoutError) as info:
        job.wait(0.05)
    assert info.value.prompt_id == job.prompt_id and info.value.timeout == 0.05
    assert t.has_unfinished()
    ops.finish(job.prompt_id, entry())
    t.handle_event(ev.Executing(node=None, prompt_id=job.prompt_id))
    assert job.wait(5).status == "success"


def test_cancel_pending_ends_interrupted_before_cancel_returns(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    assert job.cancel() is True
    assert job.status == "interrupted" and job.done()  # confirmed on the calling thread
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(0)
    assert info.value.cancelled and "removed from the queue before it ran" in str(info.value)
    pid = job.prompt_id
    assert ops.calls[-3:] == [("cancel", pid), ("queue",), ("history", pid)]
    assert job.cancel() is False


def test_cancel_pending_whose_check_fails_ends_through_the_tracker(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    ops.down = 1  # the check right after the cancel fails
    assert job.cancel() is True
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(5)
    assert info.value.cancelled and job.status == "interrupted"


def test_cancel_of_a_prompt_that_started_meanwhile_waits_for_its_interrupt(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.pending.discard(pid)
    ops.running.add(pid)  # started after our last news: the delete does nothing
    assert job.cancel() is True
    assert not job.done() and job.status == "running"
    t.handle_event(ev.ExecutionInterrupted(prompt_id=pid, node_id="2", node_type="X",
                                           executed=("1",), timestamp=1))
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(5)
    assert info.value.cancelled and info.value.node_id == "2"
    assert str(info.value) == f"prompt {pid} was cancelled: interrupted in node 2 (X)"


def test_close_ends_waits_and_joins_the_thread(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    assert any(th.name == "comfysync-tracker-t" for th in threading.enumerate())
    t.close()
    assert not any(th.name.startswith("comfysync-tracker-t") for th in threading.enumerate())
    with pytest.raises(ComfyConnectionError):
        job.wait(1)
    with pytest.raises(ComfyConnectionError):
        t.submit(WF, {})
    t.close()  # idempotent


def test_many_threads_no_cross_talk(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    results: Dict[int, Any] = {}

    def worker(i: int) -> None:
        def during_post(pid: str) -> None:
            pass

        job: PromptJob = t.submit(WF, {})
        pid = job.prompt_id
        ops.finish(pid, entry(outputs={"2": {"text": [f"t{i}"]}}))
        t.handle_event(ev.Executed(node="2", output={"text": [f"t{i}"]}, prompt_id=pid))
        t.handle_event(ev.ExecutionSuccess(prompt_id=pid, timestamp=1))
        t.handle_event(ev.Executing(node=None, prompt_id=pid))
        results[i] = job.wait(10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert sorted(results) == list(range(50))
    for i, result in results.items():
        assert result.text == {"2": [f"t{i}"]}


def test_queue_change_checks_prompts_that_have_not_started(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    waiting, started = t.submit(WF, {}), t.submit(WF, {})
    t.handle_event(ev.ExecutionStart(prompt_id=started.prompt_id, timestamp=1))
    ops.pending.discard(waiting.prompt_id)  # deleted by another client: no event for it
    t.handle_event(ev.Status(queue_remaining=1))
    with pytest.raises(PromptLostError):
        waiting.wait(5)
    assert not started.done()
    assert ("history", started.prompt_id) not in ops.calls


def test_end_signal_alone_never_makes_a_prompt_lost(ops: FakeOps, make_tracker: Any) -> None:
    """``executing(None)`` without ``execution_success`` and without a history entry: the
    queue is asked before calling the prompt lost (never trust one message alone)."""
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.pending.discard(pid)
    ops.running.add(pid)  # the server still runs it (e.g. a misattributed end signal)
    t.handle_event(ev.Executing(node=None, prompt_id=pid))
    ops.wait_calls(("queue",), 1)
    assert not job.done() and job.status == "running"
    ops.finish(pid, entry(outputs={"2": {"text": ["later"]}}))
    t.handle_event(ev.Executing(node=None, prompt_id=pid))
    assert job.wait(5).text == {"2": ["later"]}


def test_end_signal_then_nowhere_is_lost(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    pid = job.prompt_id
    ops.pending.discard(pid)
    t.handle_event(ev.Executing(node=None, prompt_id=pid))
    with pytest.raises(PromptLostError):
        job.wait(5)
    assert ("queue",) in ops.calls


def test_a_prompt_id_chosen_by_the_server_is_followed(ops: FakeOps, make_tracker: Any) -> None:
    """A server (or an on-prompt handler) that ignores our prompt_id answers with its own:
    the job follows the server's id instead of waiting for events that never come."""
    t = make_tracker()
    ops.server_id = "server-chosen-id"
    job = t.submit(WF, {})
    assert job.prompt_id == "server-chosen-id"
    run_success_events(t, "server-chosen-id", {"text": ["mine"]})
    ops.finish("server-chosen-id", entry(outputs={"2": {"text": ["mine"]}}))
    assert job.wait(5).text == {"2": ["mine"]}
    assert not t.has_unfinished()


def test_a_server_chosen_id_whose_run_ended_before_the_answer(
    ops: FakeOps, make_tracker: Any
) -> None:
    """Its events came before we knew the id: reconciliation finds the result."""
    t = make_tracker()
    ops.server_id = "fast-server-id"

    def during_post(pid: str) -> None:
        run_success_events(t, pid, {"text": ["fast"]})  # unknown id yet: not ours
        ops.finish(pid, entry(outputs={"2": {"text": ["fast"]}}))

    ops.on_post = during_post
    job = t.submit(WF, {})
    assert job.wait(5).text == {"2": ["fast"]}


def test_a_malformed_error_record_in_history_still_ends_the_job(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    job = t.submit(WF, {})
    ops.finish(job.prompt_id, entry("error", messages=[
        ["execution_error", {"node_id": ["not", "an", "id"], "exception_type": "X"}]]))
    t.on_socket_ready(reconnected=True)
    with pytest.raises(PromptExecutionError) as info:
        job.wait(5)
    assert info.value.prompt_id == job.prompt_id and job.status == "error"


def test_socket_and_history_errors_carry_the_same_payload(
    ops: FakeOps, make_tracker: Any
) -> None:
    payload = {"node_id": "2", "node_type": "ProbeFail", "exception_type": "RuntimeError",
               "exception_message": "x\n", "traceback": ["tb"], "executed": [],
               "current_inputs": {"message": ["x"]}}
    t = make_tracker()
    live, recorded = t.submit(WF, {}), t.submit(WF, {})
    t.handle_event(ev.ExecutionError(
        node_id="2", node_type="ProbeFail", exception_type="RuntimeError",
        exception_message="x\n", traceback=("tb",), prompt_id=live.prompt_id,
        raw={"type": "execution_error", "data": dict(payload, prompt_id=live.prompt_id)}))
    ops.finish(recorded.prompt_id, entry("error", messages=[
        ["execution_error", dict(payload, prompt_id=recorded.prompt_id)]]))
    t.on_socket_ready(reconnected=True)
    errors = []
    for job in (live, recorded):
        with pytest.raises(PromptExecutionError) as info:
            job.wait(5)
        errors.append(info.value)
    assert [e.raw and e.raw["current_inputs"] for e in errors] == [{"message": ["x"]}] * 2
    assert [(e.node_id, e.exception_message) for e in errors] == [("2", "x")] * 2


# --------------------------------------------------------------------------- exactly once


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """"Surely absent" after two answers 0.05 s apart instead of 1 s (the logic is the same)."""
    monkeypatch.setattr("comfysync._tracking.submission.ABSENT_SETTLE", 0.05)


def test_lost_answer_is_resolved_by_asking_the_server(ops: FakeOps, make_tracker: Any) -> None:
    """The POST reached the server but its answer was lost: the job follows the prompt, no
    second POST, no error."""
    t = make_tracker()
    ops.lose_answers = 1
    job = t.submit(WF, {})
    pid = job.prompt_id
    assert ops.calls[:2] == [("post", pid), ("queue",)]  # asked, found it queued
    assert ops.calls.count(("post", pid)) == 1 and not job.done()
    ops.finish(pid, entry(outputs={"2": {"text": ["once"]}}))
    run_success_events(t, pid, {"text": ["once"]})
    assert job.wait(5).text == {"2": ["once"]}
    assert ops.calls.count(("post", pid)) == 1


@pytest.mark.parametrize("error", [
    ComfyConnectionError("connection reset"),
    ComfyTimeoutError("read timed out"),
    ComfyHTTPError(502, "http://x/prompt", "Bad Gateway", method="POST"),
    ComfyHTTPError(504, "http://x/prompt", "Gateway Timeout", method="POST"),
])
def test_absent_after_an_ambiguous_failure_is_posted_again_with_the_same_id(
    ops: FakeOps, make_tracker: Any, quick_settle: None, error: Exception
) -> None:
    t = make_tracker()
    ops.post_errors = [error]  # failed before the server queued it
    job = t.submit(WF, {})
    pid = job.prompt_id
    assert ops.calls.count(("post", pid)) == 2  # the same id both times
    assert ops.calls.count(("queue",)) >= 2  # absent twice before posting again
    first_post = ops.calls.index(("post", pid))
    assert ("queue",) in ops.calls[first_post:ops.calls.index(("post", pid), first_post + 1)]
    ops.finish(pid, entry())
    run_success_events(t, pid)
    job.wait(5)


def test_one_absent_answer_is_not_proof(
    ops: FakeOps, make_tracker: Any, quick_settle: None
) -> None:
    """The server may still be validating the prompt at the first question: it appears in
    the queue at the second, and is followed — never posted twice."""
    t = make_tracker()
    ops.post_errors = [ComfyConnectionError("reset")]
    asked: List[int] = []

    def status(prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        asked.append(1)
        if len(asked) == 2:  # validation finished meanwhile: now queued
            ops.pending.update(prompt_ids)
        return real_status(prompt_ids)

    real_status = ops.status
    ops.status = status  # type: ignore[method-assign]
    job = t.submit(WF, {})
    assert ops.calls.count(("post", job.prompt_id)) == 1
    assert job.status == "pending" and not job.done()


def test_refused_connection_is_not_ambiguous(ops: FakeOps, make_tracker: Any) -> None:
    t = make_tracker()
    ops.post_errors = [ComfyConnectionError("connection refused", request_sent=False)]
    with pytest.raises(ComfyConnectionError):
        t.submit(WF, {})
    assert [c[0] for c in ops.calls] == ["post"]  # nothing to ask: it never left
    assert not t.has_unfinished()


def test_unknown_at_the_deadline_raises_with_the_prompt_id(
    ops: FakeOps, make_tracker: Any
) -> None:
    import time

    t = make_tracker()
    ops.post_errors = [ComfyTimeoutError("read timed out")]
    ops.down = 1000  # the server cannot be asked either
    with pytest.raises(ComfyTimeoutError) as info:
        t.submit(WF, {}, deadline=time.monotonic() + 0.3)
    pid = info.value.prompt_id
    assert pid is not None and ("post", pid) in ops.calls
    assert ops.calls.count(("queue",)) >= 2  # it kept asking until the deadline
    assert not t.has_unfinished()


def test_posts_are_bounded(ops: FakeOps, make_tracker: Any, quick_settle: None) -> None:
    t = make_tracker()
    ops.post_errors = [ComfyConnectionError("reset") for _ in range(10)]
    with pytest.raises(ComfyConnectionError):
        t.submit(WF, {})
    assert sum(1 for c in ops.calls if c[0] == "post") == 3


def test_caller_chosen_id_known_to_the_server_is_followed_not_posted(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    done_id = "6f1f0d3c-1a7e-4a52-9d3a-3a3f3f0b9e11"
    ops.history[done_id] = entry(outputs={"2": {"text": ["earlier"]}})
    job = t.submit(WF, {}, prompt_id=done_id)
    assert job.done() and job.wait(0).text == {"2": ["earlier"]}
    queued_id = "0b5e8d6f-2f44-4a5b-8f51-4d8d1f0f1c22"
    ops.running.add(queued_id)
    queued = t.submit(WF, {}, prompt_id=queued_id)
    again = t.submit(WF, {}, prompt_id=queued_id)  # the same job, not a second prompt
    assert again.prompt_id == queued.prompt_id and again._state is queued._state
    assert not any(c[0] == "post" for c in ops.calls)
    ops.finish(queued_id, entry())
    queued.wait(5)  # an attached prompt is polled: no events needed


def test_caller_chosen_id_unknown_to_the_server_is_posted(
    ops: FakeOps, make_tracker: Any
) -> None:
    t = make_tracker()
    pid = "1c7a2a4e-58a9-4d59-9d6a-0f3b8a5c7e10"
    job = t.submit(WF, {}, prompt_id=pid)
    assert job.prompt_id == pid and ops.calls == [("queue",), ("history", pid), ("post", pid)]


@pytest.mark.parametrize("bad, message", [
    ("not-a-uuid", "canonical UUID"),
    ("1C7A2A4E-58A9-4D59-9D6A-0F3B8A5C7E10", "did you mean '1c7a2a4e-58a9-4d59-9d6a-0f3b8a5c7e10'"),
    ("1c7a2a4e58a94d599d6a0f3b8a5c7e10", "did you mean '1c7a2a4e-58a9-4d59-9d6a-0f3b8a5c7e10'"),
])
def test_bad_prompt_ids_are_refused_before_anything_is_sent(
    ops: FakeOps, make_tracker: Any, bad: str, message: str
) -> None:
    t = make_tracker()
    with pytest.raises(ValueError, match=message):
        t.submit(WF, {}, prompt_id=bad)
    with pytest.raises(TypeError):
        t.attach(123)  # type: ignore[arg-type]
    assert ops.calls == []


def test_attach_ends_at_once_follows_or_says_lost(
    ops: FakeOps, make_tracker: Any, quick_settle: None
) -> None:
    t = make_tracker()
    failed = "2d9a4c8e-7b6f-4e3d-8a1b-5c4d3e2f1a00"
    ops.history[failed] = entry("error", messages=[["execution_error", {
        "prompt_id": failed, "node_id": "2", "node_type": "X", "exception_type": "E",
        "exception_message": "boom", "traceback": [], "executed": [], "timestamp": 1}]])
    with pytest.raises(PromptExecutionError, match="boom"):
        t.attach(failed).wait(0)
    running = "3e8b5d9f-8c70-4f4e-9b2c-6d5e4f3a2b11"
    ops.running.add(running)
    job = t.attach(running)
    assert job.status == "running" and not job.done()
    ops.finish(running, entry(outputs={"2": {"text": ["attached"]}}))
    assert job.wait(5).text == {"2": ["attached"]}
    with pytest.raises(PromptLostError):
        t.attach("4f9c6e0a-9d81-4a5f-8c3d-7e6f5a4b3c22")
    assert not t.has_unfinished()


def test_socket_down_means_polling_at_once(ops: FakeOps, make_tracker: Any) -> None:
    """While the event source is not connected, an unfinished prompt is checked at the
    polling pace (the watchdog here is 30 s)."""
    t = make_tracker()
    job = t.submit(WF, {})
    ops.events.connected = False  # type: ignore[misc]
    t.handle_event(ev.Disconnected("test"))
    ops.finish(job.prompt_id, entry(outputs={"2": {"text": ["polled"]}}))
    assert job.wait(5).text == {"2": ["polled"]}


def test_a_submit_interrupted_during_its_post_withdraws_the_prompt(
    ops: FakeOps, make_tracker: Any
) -> None:
    """Ctrl-C while POST /prompt is under way: the server may have queued the prompt, and
    nobody would follow it — it is cancelled by its id."""
    t = make_tracker()

    def interrupted(prompt_id: str) -> None:
        raise KeyboardInterrupt

    ops.on_post = interrupted  # after the server queued it
    with pytest.raises(KeyboardInterrupt):
        t.submit(WF, {})
    (post,) = [c for c in ops.calls if c[0] == "post"]
    assert ("cancel", post[1]) in ops.calls and not ops.pending
    assert not t.has_unfinished()


def test_cancel_all_dequeues_waiting_prompts_before_the_one_the_server_runs(
    ops: FakeOps, make_tracker: Any
) -> None:
    """The server runs a prompt this client still believes pending (its `executing` event
    has not arrived): it is interrupted last, so no waiting prompt gets to start."""
    t = make_tracker()
    jobs = [t.submit(WF, {}) for _ in range(4)]
    started = jobs[0].prompt_id
    ops.pending.discard(started)
    ops.running.add(started)  # on the server only: no event told the client
    assert all(job.status == "pending" for job in jobs)
    assert t.cancel_all() == 4
    cancels = [call[1] for call in ops.calls if call[0] == "cancel"]
    assert sorted(cancels) == sorted(job.prompt_id for job in jobs)
    assert cancels[-1] == started
