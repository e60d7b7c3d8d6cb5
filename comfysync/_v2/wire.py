"""The Comfy API v2 routes over HTTP: :class:`V2Wire`.

One method per route, each returning the typed value of :mod:`comfysync._v2.models` and raising
the typed errors of :mod:`comfysync.errors`:

* ``POST /api/v2/jobs`` (with an ``Idempotency-Key``: a retried submit never runs twice),
  ``GET /api/v2/jobs/{id}``, ``POST /api/v2/jobs/{id}/cancel``, and the job's event stream
  ``GET /api/v2/jobs/{id}/events``;
* assets: ``HEAD /api/v2/assets/by-hash/{hash}``, ``POST /api/v2/assets/from-hash``,
  ``POST /api/v2/assets`` (multipart);
* ``GET /api/v2/health``, answered without credentials by every v2 deployment.

API calls go through the client's :class:`~comfysync._http.transport.HttpTransport`, which
holds the key (``Authorization: Bearer``) for the deployment's own origin. Output files are
fetched by :meth:`V2Wire.open_content`: their URLs may redirect to a signed URL on another
origin (object storage), which is followed *without* any credential — the key goes to the
deployment's origin only, hop by hop.

The error envelope (``{"error": {"code", "message", "details"}}``) is read here, once: a
refused workflow is a :class:`~comfysync.PromptValidationError`, a refused key says which
setting to check.
"""

from __future__ import annotations

import logging
import time
from typing import IO, Any, Dict, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlsplit

import requests

from .. import events as ev
from .._http.transport import HttpTransport
from .._http.urls import strip_userinfo
from ..errors import (
    ComfyError,
    ComfyHTTPError,
    PromptValidationError,
    WorkflowFormatError,
)
from .models import V2Asset, V2Job

__all__ = ["FileSource", "V2Wire", "envelope", "retry_wait", "same_origin"]

log = logging.getLogger("comfysync.v2")

#: Redirects followed for one download (a content URL answers with one, to a signed URL).
_MAX_REDIRECTS = 5
#: The shortest wait before retrying a 429, so ``Retry-After: 0`` cannot drive a tight loop.
_MIN_RETRY_WAIT = 0.25
#: The wait before retrying a 429 that names none.
_DEFAULT_RETRY_WAIT = 2.0
#: Error codes of a refused workflow (422): the prompt, not the request, is at fault.
_WORKFLOW_CODES = frozenset({"invalid_workflow", "missing_asset", "workflow_format_ui"})

FileSource = Union[bytes, IO[bytes]]


def envelope(body: Any) -> Tuple[str, str, Dict[str, Any]]:
    """``(code, message, details)`` of the v2 error envelope (empty strings when the body is
    not one, e.g. a load balancer's text page)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", "", {}
    details = error.get("details")
    return (
        str(error.get("code") or ""),
        str(error.get("message") or ""),
        dict(details) if isinstance(details, Mapping) else {},
    )


def _origin(scheme: str, host: str, port: Optional[int]) -> Tuple[str, str, int]:
    scheme = scheme.lower()
    default = 443 if scheme == "https" else 80
    return (scheme, host.lower().strip("[]"), port if port is not None else default)


def same_origin(url: str, transport: HttpTransport) -> bool:
    """True when ``url`` has the scheme, host and port of the deployment's address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return _origin(parts.scheme, parts.hostname, port) == _origin(
        transport.scheme, transport.host, transport.port
    )


def _v2_error(exc: ComfyHTTPError, what: str) -> ComfyError:
    """A non-2xx answer of a v2 route as the error users can act on."""
    code, message, details = envelope(exc.body)
    if exc.status == 422 and code in _WORKFLOW_CODES:
        if code == "workflow_format_ui":
            return WorkflowFormatError(
                f"{what}: the deployment refused a UI-format workflow ({message}); export the "
                "workflow in API format, or pass node_defs= to convert it on this client"
            )
        node_errors = details.get("node_errors")
        return PromptValidationError(
            {"type": code, "message": message or "Workflow rejected", "details": details},
            node_errors if isinstance(node_errors, Mapping) else {},
            status=exc.status, url=exc.url, body=exc.body,
        )
    hint = ""
    if exc.status == 401:
        hint = ("the deployment wants an API key: pass api_key= or set $COMFY_API_KEY "
                "(create one at platform.comfy.org for Comfy Cloud)")
    elif exc.status == 403:
        hint = "the API key is not allowed to do this (wrong key, or not entitled)"
    elif exc.status == 402:
        hint = "the account has no credits left"
    elif exc.status == 429:
        hint = "too many requests: the deployment asks to slow down"
    text = f"{exc.method} {exc.url} failed with HTTP {exc.status}"
    if code or message:
        text += f": {code}{': ' if code and message else ''}{message}"
    if hint:
        text += f" ({hint})"
    return ComfyHTTPError(exc.status, exc.url, exc.body, method=exc.method, message=text,
                          retry_after=exc.retry_after)


def retry_wait(exc: ComfyHTTPError) -> Optional[float]:
    """Seconds to wait before retrying a 429 answer; None for any other error."""
    if exc.status != 429:
        return None
    wait = exc.retry_after if exc.retry_after is not None else _DEFAULT_RETRY_WAIT
    return max(wait, _MIN_RETRY_WAIT)


class V2Wire:
    """The v2 routes of one deployment, over the client's transport (which holds the key).
    Thread-safe."""

    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport

    @property
    def transport(self) -> HttpTransport:
        return self._transport

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            return self._transport.request_json(method, path, **kwargs)
        except ComfyHTTPError as exc:
            raise _v2_error(exc, what) from None

    def _retrying(self, method: str, path: str, what: str, deadline: Optional[float],
                  **kwargs: Any) -> Any:
        """:meth:`_call`, waiting out ``429`` answers (their ``Retry-After``) until the
        monotonic ``deadline`` (None: no limit)."""
        while True:
            try:
                return self._call(method, path, what, **kwargs)
            except ComfyHTTPError as exc:
                wait = retry_wait(exc)
                if wait is None:
                    raise
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= wait:
                        raise
                log.info("%s: HTTP 429, retrying in %.1f s", what, wait)
                time.sleep(wait)

    # -- health --------------------------------------------------------------------------

    def health(self, timeout: float) -> bool:
        """True when ``GET /api/v2/health`` answers 2xx with a JSON object."""
        try:
            body = self._transport.request_json("GET", "/api/v2/health", timeout=timeout)
        except ComfyHTTPError:
            return False
        return isinstance(body, Mapping)

    def health_status(self, timeout: float) -> ev.Status:
        """``GET /api/v2/health`` as a ``status`` event (a v2 deployment has no shared queue:
        ``queue_remaining`` is 0); raises when the deployment does not answer."""
        body = self._call("GET", "/api/v2/health", "checking the deployment", timeout=timeout)
        if not isinstance(body, Mapping):
            raise ComfyHTTPError(200, self._transport.url("/api/v2/health"), body,
                                 message="GET /api/v2/health: unexpected answer")
        return ev.Status(queue_remaining=0, raw={"type": "status", "data": dict(body)})

    def check_auth(self) -> None:
        """One authenticated request (``GET /api/v2/jobs?limit=1``); raises when the key is
        refused."""
        self._call("GET", "/api/v2/jobs", "checking the API key", params={"limit": 1})

    # -- jobs ----------------------------------------------------------------------------

    def submit(
        self,
        workflow: Mapping[str, Any],
        idempotency_key: str,
        *,
        extra_data: Optional[Mapping[str, Any]] = None,
        deadline: Optional[float] = None,
    ) -> V2Job:
        """``POST /api/v2/jobs``; a 429 is waited out until ``deadline``."""
        body: Dict[str, Any] = {"workflow": dict(workflow)}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        data = self._retrying("POST", "/api/v2/jobs", "submitting the job", deadline,
                              json=body, headers={"Idempotency-Key": idempotency_key})
        return self._job(data, "POST /api/v2/jobs")

    def get_job(self, job_id: str, *, timeout: Optional[float] = None) -> Optional[V2Job]:
        """``GET /api/v2/jobs/{id}``; None when the deployment does not know the id (404)."""
        try:
            data = self._call("GET", f"/api/v2/jobs/{quote(job_id, safe='')}",
                              f"reading job {job_id}", timeout=timeout)
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return self._job(data, "GET /api/v2/jobs/{id}")

    def cancel(self, job_id: str) -> Optional[V2Job]:
        """``POST /api/v2/jobs/{id}/cancel``; None when the id is unknown (404)."""
        try:
            data = self._call("POST", f"/api/v2/jobs/{quote(job_id, safe='')}/cancel",
                              f"cancelling job {job_id}")
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return self._job(data, "POST /api/v2/jobs/{id}/cancel")

    def drop_queued(self, job_ids: Sequence[str]) -> None:
        """Cancel those of ``job_ids`` that still wait (``queued``); running, ended and
        unknown ids are left alone, as a native server's queue delete does."""
        for job_id in job_ids:
            job = self.get_job(job_id)
            if job is not None and job.status == "queued":
                self.cancel(job_id)

    def open_events(self, job_id: str, read_timeout: float) -> requests.Response:
        """The open ``text/event-stream`` response of the job's live events (the caller
        closes it). ``read_timeout``: seconds of silence after which reading fails (the
        deployment sends heartbeats). Raises like every route; a 429 means the
        deployment's limit of concurrent streams is reached."""
        connect = self._transport.timeout
        connect_s = connect[0] if isinstance(connect, tuple) else (connect or 30.0)
        try:
            return self._transport.request(
                "GET", f"/api/v2/jobs/{quote(job_id, safe='')}/events",
                headers={"Accept": "text/event-stream"}, stream=True,
                timeout=(connect_s, read_timeout),
            )
        except ComfyHTTPError as exc:
            raise _v2_error(exc, f"opening the event stream of job {job_id}") from None

    def _job(self, data: Any, route: str) -> V2Job:
        try:
            return V2Job.from_wire(data)
        except TypeError as exc:
            raise ComfyHTTPError(200, self._transport.url(route), data,
                                 message=f"{route}: unexpected answer from the server: {exc}"
                                 ) from None

    # -- assets --------------------------------------------------------------------------

    def has_hash(self, digest: str) -> bool:
        """``HEAD /api/v2/assets/by-hash/{hash}``: does the deployment have these bytes?"""
        try:
            self._transport.request("HEAD", f"/api/v2/assets/by-hash/{quote(digest, safe=':')}")
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return False
            raise _v2_error(exc, "probing an asset by hash") from None
        return True

    def asset_from_hash(self, digest: str, file_path: str) -> Optional[V2Asset]:
        """``POST /api/v2/assets/from-hash``: a reference to bytes the deployment has; None
        when it has none the caller may use (404)."""
        try:
            data = self._call("POST", "/api/v2/assets/from-hash", "minting an asset",
                              json={"hash": digest, "file_path": file_path})
        except ComfyHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return self._asset(data)

    def upload_asset(
        self, source: FileSource, file_path: str, content_type: str, digest: Optional[str],
        idempotency_key: str,
    ) -> V2Asset:
        """``POST /api/v2/assets``: upload the bytes (``expected_hash`` lets the deployment
        check them)."""
        fields: Dict[str, str] = {"file_path": file_path, "content_type": content_type}
        if digest:
            fields["expected_hash"] = digest
        data = self._call("POST", "/api/v2/assets", "uploading an asset", data=fields,
                          files={"file": (file_path.rsplit("/", 1)[-1], source, content_type)},
                          headers={"Idempotency-Key": idempotency_key})
        return self._asset(data)

    def _asset(self, data: Any) -> V2Asset:
        try:
            return V2Asset.from_wire(data)
        except TypeError as exc:
            raise ComfyHTTPError(200, self._transport.url("/api/v2/assets"), data,
                                 message=f"assets: unexpected answer from the server: {exc}"
                                 ) from None

    # -- output files --------------------------------------------------------------------

    def open_content(self, url: str, *, timeout: Optional[float] = None) -> requests.Response:
        """The open (streamed) response of an output's content ``url``, following redirects
        (to a signed URL, usually on another origin): the transport sends the key only to
        the deployment's origin and fetches every other hop without any credential. The
        caller closes the response."""
        try:
            return self._transport.request("GET", url, stream=True, timeout=timeout,
                                           allow_foreign=True)
        except ComfyHTTPError as exc:
            raise _v2_error(exc, f"downloading {strip_userinfo(url)}") from None
