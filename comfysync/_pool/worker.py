"""The thread of one server of a :class:`~comfysync.ComfyPool`: the blocking work.

The thread (``comfysync-pool-<n>``) asks its :class:`~.server.ServerRecord` what is due and
does it: send a prompt (connecting the client first when needed), book the outcome of a
prompt, close a broken client, probe a down server, ping a server without a socket. It does
the network calls; the record books their results under its own lock, and what concerns the
pool's jobs (settle one, move one elsewhere, note that a server took it) goes through the
narrow :class:`WorkerHost` interface the engine implements. Completion callbacks of the
client's futures only post to the record's inbox, so the client's own threads never wait for
the pool.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any, List, Optional, Sequence

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]

from .._results import PromptResult
from ..errors import ComfyError, PromptLostError
from .server import Move, ServerRecord, Task
from .state import ApiLike, Attempt, PoolConfig, UserSub, classify

__all__ = ["ServerWorker", "WorkerHost"]

log = logging.getLogger("comfysync.pool")


class WorkerHost(Protocol):
    """What a server's thread may ask of the pool (implemented by the engine)."""

    @property
    def config(self) -> PoolConfig: ...

    def new_client(self, url: str) -> ApiLike:
        """A fresh client for ``url`` (with the pool's client options)."""

    def user_subscriptions(self) -> List[UserSub]:
        """The users' subscriptions, to attach to a new client."""

    def settle(
        self, attempt: Attempt, result: Optional[PromptResult], error: Optional[BaseException]
    ) -> None:
        """The job of ``attempt`` ended here with this outcome."""

    def move(self, moves: Sequence[Move]) -> None:
        """These jobs failed here through no fault of their own: run them elsewhere."""

    def accepted(self, attempt: Attempt, prompt_id: str) -> None:
        """The server took the prompt of ``attempt`` under ``prompt_id``."""


def _remove(api: ApiLike, prompt_ids: List[str], url: str) -> bool:
    """Remove prompts from a server: each is found by its id and cancelled through the
    client (dequeued if pending, interrupted if running — on every surface the client
    speaks); one the server does not have needs nothing. False when the server did not
    answer."""
    try:
        for prompt_id in prompt_ids:
            try:
                job = api.attach(prompt_id)
            except PromptLostError:
                continue  # never arrived, or already gone
            job.cancel()
    except ComfyError as exc:
        log.info("%s: could not remove prompts %s yet: %s", url, prompt_ids, exc)
        return False
    log.info("%s: removed prompts %s (they run elsewhere)", url, prompt_ids)
    return True


def _cancel_quietly(job: Any, url: str) -> None:
    """Cancel a client job (dequeue or interrupt its prompt); a server that does not answer
    only gets a log line: the caller is already on its way out."""
    try:
        job.cancel()
    except Exception as exc:
        log.warning("%s: could not cancel prompt %s: %s", url, job.prompt_id, exc)


class ServerWorker:
    """The thread of one server (see the module docstring)."""

    def __init__(self, record: ServerRecord, host: WorkerHost) -> None:
        self.record = record
        self.host = host
        self.thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"comfysync-pool-{self.record.index}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        record = self.record
        while True:
            action, task, api, subs, moves = record.next_step()
            if action == "stop":
                return
            try:
                if moves:
                    if api is not None:
                        self._remove_first(api, moves)
                    self.host.move(moves)
                if action == "teardown":
                    record.dispose(api, subs)
                elif action == "probe":
                    self._probe()
                elif action == "ping" and api is not None:
                    self._ping(api)
                elif task is not None:
                    self._do(task)
            except Exception as exc:  # a bug must not strand the jobs this thread serves
                log.exception("%s: pool worker step %r failed", record.url, action)
                if task is not None:
                    self._outcome(task[1], None, exc)

    def _do(self, task: Task) -> None:
        kind, attempt, job_future = task
        if kind == "send":
            self._send(attempt)
        elif job_future is not None:
            self._finish(attempt, job_future)

    # ------------------------------------------------------------------ health

    def _ping(self, api: ApiLike) -> None:
        """One health ping of a server without a live socket."""
        error: Optional[Exception] = None
        try:
            api.poll_status(timeout=self.host.config.health_timeout)  # its status is booked
        except Exception as exc:
            error = exc
        self.record.ping_done(api, error, error is not None and classify(error) == "down")

    def _probe(self) -> None:
        """Try a down server again with a fresh client; up when it connects."""
        record, host = self.record, self.host
        api: Optional[ApiLike] = None
        error: Optional[Exception] = None
        try:
            api = host.new_client(record.spec.url)
            record.install_api(api, host.user_subscriptions())
            api.connect(timeout=host.config.connect_timeout)
        except Exception as exc:  # refused, timed out, or a factory that cannot build
            error = exc
        moves, abandoned = record.probe_done(error)
        if moves:
            host.move(moves)
        record.changed()
        if abandoned and api is not None:  # jobs moved elsewhere must not also run here
            _remove(api, abandoned, record.url)

    def _remove_first(self, api: ApiLike, moves: Sequence[Move]) -> None:
        """Jobs leave this server: remove their prompts here before they run elsewhere (its
        socket is gone, its HTTP may still answer). What cannot be removed now is removed
        when the server answers again."""
        ids = [a.prompt_id for a, _, _ in moves if a.job is not None or a.sending]
        if ids and _remove(api, ids, self.record.url):
            self.record.removed(ids)

    # ------------------------------------------------------------------ jobs

    def _send(self, attempt: Attempt) -> None:
        """POST the attempt's prompt (connecting the client first on the first job)."""
        record, host, item = self.record, self.host, attempt.item
        api, connect, moves = record.begin_send(attempt)
        if moves:
            host.move(moves)
        if api is None:
            return
        try:
            if connect:
                api.connect(timeout=host.config.connect_timeout)
                record.connected(api)
            job = api.submit(item.workflow, **{**item.kwargs, "prompt_id": attempt.prompt_id})
        except Exception as exc:
            self._outcome(attempt, None, exc)
            return
        follow, cancel = record.sent(attempt, job)
        if not follow:
            return
        host.accepted(attempt, job.prompt_id)
        if cancel:
            _cancel_quietly(job, record.url)
        future: Optional[concurrent.futures.Future[Any]] = job.future
        if future is None:
            self._outcome(attempt, None, ComfyError("the client gave no future for the prompt"))
            return

        def done(f: concurrent.futures.Future[Any]) -> None:  # the client's thread
            record.post_done(attempt, f)

        future.add_done_callback(done)

    def _finish(self, attempt: Attempt, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            prompt_id = attempt.item.future.prompt_id or ""
            lost = PromptLostError("the client cancelled the prompt", prompt_id=prompt_id)
            self._outcome(attempt, None, lost)
            return
        error = future.exception()
        self._outcome(attempt, None if error is not None else future.result(), error)

    def _outcome(
        self, attempt: Attempt, result: Optional[PromptResult], error: Optional[BaseException]
    ) -> None:
        """Book the end of one attempt, then deliver it or move the job elsewhere."""
        kind = classify(error)
        moves = self.record.book(attempt, kind, error)
        if moves is None:
            return
        if kind in ("ok", "user"):
            self.host.settle(attempt, result, error)
        else:
            assert error is not None
            self.host.move(list(moves) + [(attempt, error, True)])
        self.record.changed()
