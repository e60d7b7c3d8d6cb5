"""A Comfy API v2 deployment as the server surface prompt tracking goes through:
:class:`V2Surface`.

Tracking asks a surface to submit, to say where a prompt is, to give a finished prompt's record
and to cancel; it never speaks HTTP itself. On v2:

* ``submit`` posts the job with the tracker's prompt id as its ``Idempotency-Key`` (a retried
  submit never runs twice; a connection that broke after sending is retried with the same key)
  and answers with the deployment's job id, which the tracker follows from then on;
* ``status`` reads the job resource — the only authority on how a job ended. ``expired`` is
  read again a few times over about a second before it counts (comfy-api-proxy answers
  ``expired`` for one poll when a job finishes between its two reads of ComfyUI); a
  ``429`` is honoured by not asking again before its ``Retry-After``;
* a finished job becomes the :class:`~comfysync._rest.models.HistoryEntry` tracking and results
  read (its outputs under their native keys, its error as an ``execution_error`` record), so
  ``failed`` / ``canceled`` / ``expired`` end as ``PromptExecutionError`` (node fields when the
  deployment names them) / ``PromptInterruptedError`` / ``PromptLostError`` exactly as on a
  native server;
* ``submit`` reads the job once right away (:attr:`Submitted.status`): a job over within
  milliseconds ends then, without its event stream;
* live events come from :class:`~comfysync._v2.stream.V2EventSource`, opened for a job when
  a read finds it unfinished; its terminal frame makes tracking read that job at once.

:class:`V2Files` is what an :class:`~comfysync.OutputFile` of a v2 result reads through: the
output's content URL, never a ``/view`` route.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import requests
import urllib3

from .._http.transport import iter_response
from .._rest.models import HistoryEntry
from .._rest.saving import DEFAULT_CHUNK_SIZE, save_target, stream_to_path
from .._tracking.surface import PromptStatus, Submitted
from ..errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
    UnsupportedError,
)
from .models import V2Job
from .sse import file_item
from .stream import V2EventSource
from .wire import V2Wire, envelope, retry_wait

__all__ = ["V2Files", "V2Surface", "job_entry"]

log = logging.getLogger("comfysync.v2")

#: Delays between re-reads of a job answered ``expired`` before it counts as lost (the first
#: soon: a job that just finished reads ``succeeded`` a moment later).
EXPIRED_REREADS: Tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4)
#: How long a submit keeps retrying (429 waits, a connection lost after sending) when the
#: caller gives no deadline (tracking always gives the caller's).
SUBMIT_BUDGET = 60.0
#: Tries of a submit whose request may have reached the deployment (same key each time).
SUBMIT_ATTEMPTS = 3
#: Status codes after which a submit may or may not have reached the deployment.
_AMBIGUOUS = frozenset({502, 503, 504})


def job_entry(job: V2Job) -> HistoryEntry:
    """A finished job as the history record tracking and results read."""
    outputs: Dict[str, Dict[str, Any]] = {}
    for out in job.outputs:
        items = outputs.setdefault(out.node_id, {}).setdefault(out.output_key, [])
        items.append(file_item(out))
    messages: List[Tuple[str, Dict[str, Any]]] = []
    started = _ms(job.started_at)
    if started is not None:
        messages.append(("execution_start", {"prompt_id": job.id, "timestamp": started}))
    finished = _ms(job.completed_at)
    status_str = "success"
    if job.status == "failed":
        status_str = "error"
        error = job.error
        traceback = error.traceback if error is not None else None
        messages.append(("execution_error", {
            "prompt_id": job.id,
            "node_id": error.node_id if error is not None else None,
            "node_type": error.class_type if error is not None else None,
            "exception_type": error.code if error is not None else "error",
            "exception_message": (error.message if error is not None else "")
            or "the deployment reports the job failed without details",
            "traceback": [traceback] if traceback else [],
            "executed": [],
            "timestamp": finished,
        }))
    elif job.status == "canceled":
        status_str = "error"
        messages.append(("execution_interrupted", {
            "prompt_id": job.id, "node_id": None, "node_type": None, "executed": [],
            "timestamp": finished,
        }))
    elif finished is not None:
        messages.append(("execution_success", {"prompt_id": job.id, "timestamp": finished}))
    return HistoryEntry(
        prompt_id=job.id,
        outputs=outputs,
        status_str=status_str,
        completed=job.status == "succeeded",
        messages=messages,
        raw=dict(job.raw),
    )


def maybe_sent(exc: BaseException) -> bool:
    """False when the request surely never reached the server (connection refused, name not
    resolved, connect timeout): retrying it cannot run a job twice, and failing over is
    better than waiting."""
    cause = exc.__cause__
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(cause, requests.exceptions.ConnectionError):
        inner = cause.args[0] if cause.args else None
        reason = getattr(inner, "reason", inner)
        if isinstance(reason, urllib3.exceptions.NewConnectionError):
            return False
    return True


def _ms(when: Any) -> Optional[int]:
    return None if when is None else int(when.timestamp() * 1000)


class V2Surface:
    """:class:`~comfysync._tracking.surface.ServerSurface` over a v2 deployment."""

    def __init__(self, wire: V2Wire, events: V2EventSource) -> None:
        self._wire = wire
        self._events = events
        self._lock = threading.Lock()
        self._not_before = 0.0  # a 429 asked us not to poll before this (monotonic)

    @property
    def events(self) -> V2EventSource:
        return self._events

    # -- submit ----------------------------------------------------------------------------

    def submit(
        self, prompt: Mapping[str, Any], prompt_id: str, options: Mapping[str, Any],
        deadline: Optional[float] = None,
    ) -> Submitted:
        refused = [name for name, value in (
            ("front=True", options.get("front")),
            ("number=", options.get("number")),
            ("partial_execution_targets=", options.get("partial_execution_targets")),
        ) if value]
        if refused:
            raise UnsupportedError(
                f"{', '.join(refused)} cannot be sent to a Comfy API v2 deployment, which has "
                "no queue order to choose and runs whole workflows; leave it out",
                surface="v2", operation="submit",
            )
        extra = options.get("extra_data")
        if deadline is None:
            deadline = time.monotonic() + SUBMIT_BUDGET
        attempt = 0
        while True:
            attempt += 1
            pause = min(0.2 * attempt, 2.0)  # before the next try, if there is one
            try:
                job = self._wire.submit(prompt, prompt_id, extra_data=extra, deadline=deadline)
                break
            except ComfyHTTPError as exc:
                code = envelope(exc.body)[0]
                if exc.status == 422 and code == "idempotency_key_reuse":  # our own key, sent
                    raise ComfyError(  # before: that attempt created the job
                        f"submitting job (idempotency key {prompt_id}): an earlier attempt "
                        "reached the deployment, which created the job, but its answer was "
                        "lost; the job runs there and cannot be followed from here"
                    ) from exc
                if (exc.status not in _AMBIGUOUS or attempt >= SUBMIT_ATTEMPTS
                        or time.monotonic() + pause >= deadline):
                    raise
                log.info("submit answered HTTP %s; retrying with the same key", exc.status)
            except (ComfyConnectionError, ComfyTimeoutError) as exc:
                if (not maybe_sent(exc) or attempt >= SUBMIT_ATTEMPTS
                        or self._wire.transport.closed
                        or time.monotonic() + pause >= deadline):
                    raise
                log.info("submit failed (%s); retrying with the same key", exc)
            time.sleep(pause)
        return Submitted(prompt_id=job.id, assigns_ids=True, status=self._first_read(job.id))

    def _first_read(self, job_id: str) -> Optional[PromptStatus]:
        """The job read once, right after it was created, on the submitting thread: a job
        over within milliseconds then ends after two round trips (submit, read) with no
        thread hop, and its event stream opens only when it is unfinished. None (tracking
        asks at once, on its thread) when the read fails or says ``expired`` twice (read
        again over about a second before it counts)."""
        try:
            job = self._read(job_id)
            if job is not None and job.status == "expired":  # most likely it just ended:
                job = self._read(job_id)  # read again at once, before any wait
        except ComfyError as exc:
            log.debug("job %s: first read failed: %s", job_id, exc)
            return None
        if job is None or job.status == "expired":
            return None
        return self._found(job)

    # -- status ----------------------------------------------------------------------------

    def status(self, prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        found: Dict[str, PromptStatus] = {}
        for job_id in prompt_ids:
            if time.monotonic() < self._not_before:
                found[job_id] = PromptStatus("unknown")
                continue
            found[job_id] = self._status_of(job_id)
        return found

    def _status_of(self, job_id: str) -> PromptStatus:
        job = self._read(job_id)
        for delay in EXPIRED_REREADS:
            if job is None or job.status != "expired":
                break
            time.sleep(delay)  # maybe finished between the deployment's two reads
            job = self._read(job_id)
        if job is None:
            return PromptStatus("absent")
        if job.status == "expired":
            self._events.unwatch(job_id)
            return PromptStatus("absent")
        return self._found(job)

    def _found(self, job: V2Job) -> PromptStatus:
        """Where a job read (not ``expired``) is; opens its event stream while it is
        unfinished, closes it once it ended."""
        if job.terminal:
            self._events.unwatch(job.id)
            return PromptStatus("done", job_entry(job))
        self._events.watch(job.id)
        return PromptStatus("running" if job.status in ("running", "canceling") else "queued")

    def _read(self, job_id: str) -> Optional[V2Job]:
        try:
            return self._wire.get_job(job_id)
        except ComfyHTTPError as exc:
            wait = retry_wait(exc)
            if wait is not None:
                self._not_before = time.monotonic() + wait
            raise

    def result(self, prompt_id: str) -> Optional[HistoryEntry]:
        job = self._read(prompt_id)
        if job is None or not job.terminal or job.status == "expired":
            return None
        return job_entry(job)

    def cancel(self, prompt_id: str) -> None:
        self._wire.cancel(prompt_id)


class V2Files:
    """How output files of a v2 result are read: from their content URLs (see
    :meth:`~comfysync._v2.wire.V2Wire.open_content`)."""

    def __init__(self, wire: V2Wire) -> None:
        self._wire = wire

    @staticmethod
    def _url(ref: Any) -> str:
        extra = getattr(ref, "extra", None)
        url = extra.get("url") if isinstance(extra, Mapping) else None
        if url is None and isinstance(ref, Mapping):
            url = ref.get("url")
        if not isinstance(url, str) or not url:
            raise UnsupportedError(
                "a Comfy API v2 deployment serves files only by their content URL; pass an "
                "OutputFile of a result from this client",
                surface="v2", operation="GET /view",
            )
        return url

    def get_image(self, ref: Any) -> bytes:
        response = self._wire.open_content(self._url(ref))
        try:
            return response.content
        finally:
            response.close()

    def download(self, ref: Any, dest: Union[str, os.PathLike[str]],
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> Path:
        url = self._url(ref)
        name = getattr(ref, "filename", None) or str(url).rsplit("/", 1)[-1]
        target = save_target(dest, str(name))
        response = self._wire.open_content(url)
        try:
            return stream_to_path(iter_response(response, chunk_size=chunk_size), target,
                                  chunk_size)
        finally:
            response.close()

    def get_path_image(self, ref: Any) -> str:
        return self._url(ref)
