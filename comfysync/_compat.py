"""Seed-compatible entry points: the comfy-api-client shape, synchronous.

Code written for ``comfy_api_client`` (``create_client``, ``submit_workflow``,
``prompt.future``, ``result.output_images[0].image``) runs on comfysync with ``await``
removed::

    with create_client("localhost:8188", start_state_tracker="websocket") as client:
        prompt = client.submit_workflow(utils.read_json("workflow.json"))
        result = prompt.future.result(timeout=60)
        image = result.output_images[0].image

``ComfyClient`` is a :class:`~comfysync.ComfyApi` with the two extra method names; everything
else (REST methods, events, ``run_workflow``) is the same object. The one difference of
shape: the seed's ``submit_workflow(wf, return_future=False)`` hands back a prompt whose
``future`` is None; that is :class:`SeedPromptJob`, so that :class:`~comfysync.PromptJob`
itself can promise a future to every ``ComfyApi.submit`` caller.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Literal, Optional, Union, overload

from ._client import ComfyApi
from ._results import PromptResult
from ._tracking.job import JobHandle, PromptJob
from ._types import WorkflowLike

__all__ = ["ComfyClient", "SeedPromptJob", "create_client"]

_TRACKER_OF = {"websocket": "websocket", "http": "http", None: "http"}


class SeedPromptJob(JobHandle):
    """What ``submit_workflow(wf, return_future=False)`` returns: a handle like
    :class:`~comfysync.PromptJob` (status, progress, events, ``wait``, ``cancel``) whose
    ``future`` is None, as in the seed API; get the result with
    :meth:`ComfyClient.fetch_results`."""

    @property
    def future(self) -> Optional[Future[PromptResult]]:
        return None


class ComfyClient(ComfyApi):
    """A :class:`~comfysync.ComfyApi` that also answers to the comfy-api-client method names."""

    @overload
    def submit_workflow(
        self, workflow: WorkflowLike, return_future: Literal[True] = ..., **kwargs: Any
    ) -> PromptJob: ...

    @overload
    def submit_workflow(
        self, workflow: WorkflowLike, return_future: Literal[False], **kwargs: Any
    ) -> SeedPromptJob: ...

    @overload
    def submit_workflow(
        self, workflow: WorkflowLike, return_future: bool = ..., **kwargs: Any
    ) -> Union[PromptJob, SeedPromptJob]: ...

    def submit_workflow(
        self, workflow: WorkflowLike, return_future: bool = True, **kwargs: Any
    ) -> Union[PromptJob, SeedPromptJob]:
        """:meth:`ComfyApi.submit`; with ``return_future=False`` the prompt's ``future`` is
        None (a :class:`SeedPromptJob`) and the result is fetched with
        :meth:`fetch_results`."""
        job = self.submit(workflow, **kwargs)
        if return_future:
            return job
        return SeedPromptJob(job._state, job._tracker)

    def fetch_results(self, prompt: JobHandle, timeout: Optional[float] = None) -> PromptResult:
        """The result of ``prompt`` once it is done (blocks up to ``timeout`` seconds; raises
        the prompt's error like :meth:`PromptJob.wait`)."""
        return prompt.wait(timeout)


def create_client(
    url: str = "127.0.0.1:8188",
    start_state_tracker: Optional[str] = "websocket",
    **kwargs: Any,
) -> ComfyClient:
    """A client for ``url``; use it as a context manager (``with create_client(...) as c``).

    ``start_state_tracker``: ``"websocket"`` (events over the socket), ``"http"`` (polling
    ``/queue`` and ``/history/{id}``; for servers behind proxies without WebSocket support)
    or ``None`` (no socket; prompts are followed by polling so that :meth:`fetch_results`
    can return them). Other keyword arguments go to :class:`~comfysync.ComfyApi`.
    """
    if start_state_tracker not in _TRACKER_OF:
        raise ValueError(
            "start_state_tracker must be 'websocket', 'http' or None, "
            f"not {start_state_tracker!r}"
        )
    kwargs.setdefault("tracker", _TRACKER_OF[start_state_tracker])
    return ComfyClient(url, **kwargs)
