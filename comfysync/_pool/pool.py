"""ComfyPool: one blocking API over several ComfyUI servers, with failover.

The public face of the pool. The moving parts live next door: :mod:`.engine` (the lock, the
queue of waiting jobs, the dispatcher thread), :mod:`.server` (what the pool keeps about one
server), :mod:`.health` (a server's health state machine), :mod:`.worker` (one thread per
server: connect, submit, outcomes, probes and pings), :mod:`.state` (job records,
:class:`PoolFuture`, which failures are retried) and :mod:`.policies` (what a policy sees and
the built-in policies).

Threads: one dispatcher and one worker per server, started with the first job and joined by
:meth:`ComfyPool.close`, plus each server client's own listener and tracker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from .._notebook import ProgressDisplay
from .._results import PromptResult
from .._tracking.submission import canonical_prompt_id
from .._types import WorkflowLike
from ..errors import (
    ComfyError,
    PoolClosedError,
    PoolFullError,
    PromptLostError,
    PromptTimeoutError,
)
from ..events import Event, EventKey
from .engine import Engine
from .lookup import find_prompt
from .policies import (
    PolicyArg,
    ServerArg,
    ServerSpec,
    ServerStats,
    ServerView,
    parse_server,
    resolve_policy,
)
from .state import ApiFactory, Item, PoolConfig, PoolFuture, selectors

__all__ = ["ComfyPool", "PoolFuture", "PoolSubscription"]

log = logging.getLogger("comfysync.pool")

#: ``callback(event, server_url)``: what :meth:`ComfyPool.on` calls.
EventCallback = Callable[[Event, str], Any]
Selector = Union[None, str, Iterable[str]]


class PoolSubscription:
    """Returned by :meth:`ComfyPool.on`; ``cancel()`` unsubscribes from every server."""

    def __init__(self, engine: Engine, key: EventKey, callback: EventCallback) -> None:
        self._engine = engine
        self.key = key
        self.callback = callback

    def cancel(self) -> None:
        self._engine.unsubscribe(self)

    def __repr__(self) -> str:
        return f"<PoolSubscription {self.key!r}>"


class ComfyPool:
    """Several ComfyUI servers behind one blocking API.

    ``urls``: one entry per server — ``"host:port"``, ``("host:port", {"tags": [...],
    "weight": 2, "priority": 1, "max_inflight": 4})``, a ``{"url": …, …}`` mapping or a
    :class:`ServerSpec`. ``policy``: ``"least_busy"`` (default), ``"round_robin"`` or a callable
    ``policy(servers, workflow)`` returning one of the :class:`ServerView` s it was given (or
    its URL), or ``None`` to keep the job waiting. A policy is shown the free servers of the
    highest ``priority`` a job may use: lower priorities are the overflow, used only while
    every higher server is busy or unreachable.

    ``max_inflight_per_server``: jobs of this pool a server holds at once (a server's own
    ``max_inflight`` overrides it). ``retries``: how
    many times a job whose server failed (refused, dropped, lost the prompt) is resubmitted.
    ``max_queued``: jobs waiting for a free server before :meth:`submit` raises
    :class:`~comfysync.errors.PoolFullError`. ``wait_for_server``: seconds a job waits while
    every server it may use is down. ``failover_after``: seconds a server may stay
    disconnected before its jobs move elsewhere; a server whose client tracks prompts without
    a socket (``tracker="http"``, or ``"auto"`` fallen back to polling) reports no drop, so
    while it holds jobs the pool pings it (``poll_status``) every ``min(2, failover_after /
    4)`` seconds and the same limit applies to its pings going unanswered.
    ``connect_timeout``: for each client's ``connect()``. ``backoff_base`` / ``backoff_cap``:
    a down server is probed again after ``base * 2**n`` seconds (jittered), at most ``cap``.
    Every other keyword goes to each :class:`~comfysync.ComfyApi` (``auth``, ``token``,
    ``timeout``, ``headers``, ``tracker``, …); ``api_factory(url, **kwargs)`` replaces
    ``ComfyApi`` (tests, subclasses).

    Clients are created at once but connect with their first job. Use the pool as a context
    manager, or call :meth:`close`. Futures' callbacks run on the pool's threads: they must not
    block on the pool (``run_workflow``, ``map`` and ``close(wait=True)`` raise
    ``RuntimeError`` there).
    """

    def __init__(
        self,
        urls: Sequence[ServerArg],
        policy: PolicyArg = "least_busy",
        *,
        max_inflight_per_server: int = 1,
        retries: int = 2,
        max_queued: int = 1000,
        wait_for_server: float = 30.0,
        failover_after: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        api_factory: Optional[ApiFactory] = None,
        **comfyapi_kwargs: Any,
    ) -> None:
        if isinstance(urls, (str, ServerSpec)):
            urls = [urls]
        specs = [parse_server(u) for u in urls]
        if not specs:
            raise ValueError("ComfyPool needs at least one server")
        if max_inflight_per_server < 1 or retries < 0 or max_queued < 1:
            raise ValueError("need max_inflight_per_server >= 1, retries >= 0, max_queued >= 1")
        config = PoolConfig(
            max_inflight=max_inflight_per_server,
            retries=retries,
            max_queued=max_queued,
            wait_for_server=wait_for_server,
            failover_after=failover_after,
            connect_timeout=connect_timeout,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
        )
        if api_factory is None:
            from .._client import ComfyApi

            api_factory = ComfyApi
        self._engine = Engine(
            specs, resolve_policy(policy, len(specs)), config, api_factory, comfyapi_kwargs
        )
        try:
            for server in self._engine.servers:
                server.install_api(api_factory(server.spec.url, **comfyapi_kwargs), [])
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ running work

    def submit(
        self,
        workflow: WorkflowLike,
        *,
        include: Selector = None,
        exclude: Selector = None,
        prompt_id: Optional[str] = None,
        **kwargs: Any,
    ) -> PoolFuture:
        """Queue ``workflow`` for the next suitable server and return at once.

        ``include`` / ``exclude``: server URLs or tags the job may (not) run on. Other keywords
        go to :meth:`ComfyApi.submit` on the chosen server. The :class:`PoolFuture` tells which
        server ran the job (``future.server``). Raises :class:`~comfysync.errors.PoolFullError`
        when ``max_queued`` jobs already wait.

        Every job is posted under one prompt id, on whichever server it runs (a failed POST is
        resolved by asking that server about the id, never by posting blindly elsewhere).
        ``prompt_id``: a canonical UUID chosen by the caller (e.g. derived from a task id);
        the servers of the pool are asked about it first, all at once, one look each (this
        call blocks for those requests), and a prompt some server already has is followed
        there instead of run again — submitting the same id twice runs the workflow once. A
        server that is down or does not answer cannot be asked and is skipped. One look cannot
        see a prompt a server is still validating: when an earlier attempt may have posted
        this id moments ago (a redelivered task), look first with :meth:`attach`.
        """
        item = self._make_item(workflow, include, exclude, kwargs, prompt_id)
        self._enqueue(item, prompt_id is not None)
        return item.future

    def _enqueue(self, item: Item, look_first: bool) -> None:
        """Queue a job (refused when ``max_queued`` wait), or follow its prompt where a
        server already has it (``look_first``: its id was chosen by the caller)."""
        engine = self._engine
        if look_first:
            found, _ = find_prompt(
                item.prompt_id, [engine.servers[i] for i in item.allowed], careful=False
            )
            if found is not None:
                server, job = found
                engine.adopt(item, server, job)
                return
        with engine.lock:
            if not engine.closed and len(engine.queue) >= engine.config.max_queued:
                raise PoolFullError(
                    f"{len(engine.queue)} jobs already wait for a server "
                    f"(max_queued={engine.config.max_queued}); submit again once some have "
                    "started, or use map(), which waits for room",
                    max_queued=engine.config.max_queued,
                )
            engine.enqueue_locked(item)

    def run_workflow(
        self,
        workflow: WorkflowLike,
        timeout: Optional[float] = None,
        *,
        include: Selector = None,
        exclude: Selector = None,
        progress: bool = False,
        prompt_id: Optional[str] = None,
        **kwargs: Any,
    ) -> PromptResult:
        """Run ``workflow`` on some server and block until its result.

        ``timeout`` bounds the whole call, waiting for a server included, and raises
        :class:`~comfysync.errors.PromptTimeoutError`: a job still waiting in the pool is then
        withdrawn; one already on a server keeps running there (as with ``ComfyApi``).
        ``progress=True``: a progress bar (and a live preview in a notebook), as with
        :meth:`ComfyApi.run_workflow`.
        When the wait is interrupted (``KeyboardInterrupt``, ``SystemExit``) the job is
        withdrawn, or its prompt cancelled on its server (dequeued, or interrupted if it
        runs), and the exception is raised again. ``submit(...).result()`` leaves the job
        alone in that case. ``prompt_id``: as for :meth:`submit`.
        """
        self._engine.check_may_block("run_workflow()")
        display = ProgressDisplay() if progress else None
        item = self._make_item(workflow, include, exclude, kwargs, prompt_id)
        future = item.future
        try:  # from the queueing on: an interrupt anywhere in it cancels the job
            self._enqueue(item, prompt_id is not None)
            if display is not None:
                return display.wait(lambda left: self._result(future, left, withdraw=True),
                                    future.done, lambda: future.job, timeout)
            return self._result(future, timeout, withdraw=True)
        except (KeyboardInterrupt, SystemExit):
            self._cancel_interrupted(future)
            raise

    def _cancel_interrupted(self, future: PoolFuture) -> None:
        """Withdraw or cancel the job of an interrupted ``run_workflow``."""
        future.cancel()
        item = future._item
        if item is None:
            return
        for job in self._engine.cancel_job(item):
            try:
                job.cancel()
            except Exception as exc:  # the interrupt is what the caller must see
                log.warning("could not cancel prompt %s: %s", job.prompt_id, exc)

    def map(
        self,
        workflows: Iterable[WorkflowLike],
        timeout: Optional[float] = None,
        *,
        include: Selector = None,
        exclude: Selector = None,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> List[Any]:
        """Run every workflow; return the results in the order given.

        Unlike :meth:`submit` it waits for room when the queue is full. ``timeout`` bounds the
        whole call. The first failure in order is raised and the jobs still waiting in the pool
        are withdrawn — unless ``return_exceptions=True``: then each exception takes the place
        of its result.
        """
        engine = self._engine
        engine.check_may_block("map()")
        deadline = None if timeout is None else time.monotonic() + timeout

        def room() -> bool:
            return engine.closed or len(engine.queue) < engine.config.max_queued

        futures: List[PoolFuture] = []
        try:
            for workflow in workflows:
                item = self._make_item(workflow, include, exclude, kwargs)
                with engine.lock:
                    if not engine.wait_locked(room, deadline):
                        raise PromptTimeoutError(
                            f"map() timed out after {timeout} s; {len(futures)} "
                            "workflows were submitted",
                            prompt_id="",
                            timeout=timeout,
                        )
                    engine.enqueue_locked(item)  # raises PoolClosedError once closed
                futures.append(item.future)
            results: List[Any] = []
            for future in futures:
                left_s = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    results.append(self._result(future, left_s, withdraw=False))
                except (PromptTimeoutError, PoolClosedError):
                    raise
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    results.append(exc)
            return results
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    # ------------------------------------------------------------------ servers

    def servers(self) -> List[ServerView]:
        """A snapshot of every server, in the pool's order."""
        with self._engine.lock:
            return [s.view() for s in self._engine.servers]

    def stats(self) -> Dict[str, ServerStats]:
        """Server URL → :class:`ServerStats` (state, in flight, completed, failed, lost, mean
        run time), in the pool's order."""
        with self._engine.lock:
            return {s.url: s.stats() for s in self._engine.servers}

    def servers_with_model(self, folder: str, name: str) -> List[str]:
        """URLs of the servers not known to be down whose model ``folder`` (``"checkpoints"``,
        ``"loras"``, …) holds ``name`` — pass them as ``include=``. Asks every server now
        (``GET /models/{folder}``); one that does not answer is left out."""
        with self._engine.lock:
            targets = [(s.url, s.client_if_usable()) for s in self._engine.servers]
        found: List[str] = []
        for url, api in targets:
            if api is None:
                continue
            try:
                models = api.get_models(folder)
            except ComfyError as exc:
                log.info("%s: cannot list models/%s: %s", url, folder, exc)
                continue
            if name in models:
                found.append(url)
        return found

    # ------------------------------------------------------------------ events

    def on(self, key: EventKey, callback: EventCallback) -> PoolSubscription:
        """Call ``callback(event, server_url)`` for every ``key`` event (a name, an event class,
        or ``"*"``) of every server, including servers whose client is replaced after a
        failure. It runs on that server's listener thread: keep it quick."""
        sub = PoolSubscription(self._engine, key, callback)
        self._engine.subscribe(sub)
        return sub

    def off(self, key: EventKey, callback: EventCallback) -> None:
        """Remove every subscription of ``callback`` to ``key``."""
        with self._engine.lock:
            subs = [s for s in self._engine.user_subs if s.key == key and s.callback == callback]
        for sub in subs:
            self._engine.unsubscribe(sub)

    # ------------------------------------------------------------------ lifetime

    def close(self, wait: bool = False, timeout: Optional[float] = None) -> None:
        """Stop the pool: no new jobs, every thread joined, every client closed. Idempotent.

        With ``wait=True`` it first lets waiting and running jobs finish (up to ``timeout``
        seconds). Jobs unfinished then end: waiting ones are cancelled, running ones fail with
        :class:`~comfysync.errors.PoolClosedError` (their prompts may still run on the
        servers).
        """
        engine = self._engine
        with engine.lock:
            if engine.closed and not engine.started:
                already = not any(s.has_client() for s in engine.servers)
                if already:
                    return
        engine.stop(wait, None if timeout is None else time.monotonic() + timeout)

    def _wait_until(
        self, predicate: Callable[[Dict[str, ServerStats]], bool], timeout: float
    ) -> bool:
        """Block until ``predicate(self.stats())`` holds, checked again on every change of
        the pool (no polling); False after ``timeout`` seconds. A hook for tests."""
        engine = self._engine
        with engine.lock:
            return engine.wait_locked(lambda: predicate(self.stats()), time.monotonic() + timeout)

    def __enter__(self) -> ComfyPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        engine = self._engine
        with engine.lock:
            states = ", ".join(f"{s.url} {s.state}" for s in engine.servers)
            return (
                f"<ComfyPool [{states}] queued={len(engine.queue)} "
                f"in_flight={engine.in_flight_locked()}{' closed' if engine.closed else ''}>"
            )

    # ------------------------------------------------------------------ helpers

    def _make_item(
        self,
        workflow: Any,
        include: Selector,
        exclude: Selector,
        kwargs: Dict[str, Any],
        prompt_id: Optional[str] = None,
    ) -> Item:
        if "return_future" in kwargs:
            raise TypeError("ComfyPool follows every job through its future: drop return_future")
        if "prompt_id" in kwargs:
            raise TypeError("map() runs several workflows: one prompt_id cannot name them all")
        if prompt_id is None:
            prompt_id = str(uuid.uuid4())
        else:
            canonical_prompt_id(prompt_id)  # a bad id fails before anything is queued
        inc, exc = selectors(include), selectors(exclude)
        servers = self._engine.servers
        allowed = tuple(
            s.index
            for s in servers
            if (inc is None or any(s.matches(x) for x in inc))
            and not (exc and any(s.matches(x) for x in exc))
        )
        if not allowed:
            raise ValueError(
                f"no server of the pool matches include={inc} exclude={exc}; servers: "
                + ", ".join(f"{s.url} {sorted(s.spec.tags)}" for s in servers)
            )
        future = PoolFuture()
        future._on_cancel = self._engine.wake
        item = Item(workflow, kwargs, allowed, future, prompt_id)
        future._item = item
        return item

    def attach(self, prompt_id: str) -> Any:
        """A :class:`~comfysync.PromptJob` following the prompt ``prompt_id`` on whichever
        server of the pool has it (queued, running or in history), e.g. one submitted by
        another process. Every server not known to be down is asked, all at once; each
        concludes "absent" only from two answers about a second apart (a prompt posted a
        moment ago may still be validated), so a miss takes about a second in all.
        Raises ``PromptLostError`` when none has it (naming the servers that could not be
        asked), ``ValueError`` for an id that is not a canonical UUID."""
        canonical_prompt_id(prompt_id)
        found, unreachable = find_prompt(prompt_id, self._engine.servers)
        if found is not None:
            return found[1]
        asked = [s.url for s in self._engine.servers if not any(
            u.startswith(s.url + " ") for u in unreachable)]
        raise PromptLostError(
            f"no server of the pool has prompt {prompt_id} (asked: {', '.join(asked) or 'none'}"
            + (f"; could not ask: {'; '.join(unreachable)}" if unreachable else "")
            + ")",
            prompt_id=prompt_id,
        )

    @staticmethod
    def _result(future: PoolFuture, timeout: Optional[float], withdraw: bool) -> PromptResult:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if withdraw:
                future.cancel()
            where = (
                f"prompt {future.prompt_id} on {future.server}"
                if future.prompt_id
                else "the job (still waiting for a free server)"
            )
            raise PromptTimeoutError(
                f"{where} did not finish within {timeout} s",
                prompt_id=future.prompt_id or "",
                timeout=timeout,
            ) from None
        except concurrent.futures.CancelledError:
            raise PoolClosedError(
                "the job was cancelled before it ran (pool closed, or future cancelled)"
            ) from None
