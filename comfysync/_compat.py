"""Everything kept for code written against comfy-api-client, in one module.

Code written for ``comfy_api_client`` (``create_client``, ``submit_workflow``,
``prompt.future``, ``result.output_images[0].image``) runs on comfysync with ``await``
removed::

    with create_client("localhost:8188", start_state_tracker="websocket") as client:
        prompt = client.submit_workflow(utils.read_json("workflow.json"))
        result = prompt.future.result(timeout=60)
        image = result.output_images[0].image

``ComfyClient`` is a :class:`~comfysync.ComfyApi` with the two extra method names; everything
else (REST methods, events, ``run_workflow``) is the same object. The seed's
``submit_workflow(wf, return_future=False)`` hands back a :class:`~comfysync.PromptJob` whose
``future`` is None (``SeedPromptJob`` is that same class, under the name older code imports).
``utils.read_json`` is :func:`read_json` here.

The seed's names for things of lower layers — the event keys ``"all"`` and
``"execution_complete"``, ``PromptResult.output_images`` and ``OutputFile.image`` — are added
to those layers from here when comfysync is imported (:func:`_add_seed_names`), so that the
lower layers neither know this shape nor import upwards to reach it.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from . import events
from ._client import ComfyApi
from ._results import OutputFile, OutputFiles, PromptResult
from ._tracking.job import PromptJob
from ._types import WorkflowLike
from ._workflow.format import read_json_file

__all__ = ["ComfyClient", "SeedPromptJob", "create_client", "read_json"]

_TRACKER_OF = {"websocket": "websocket", "http": "http", None: "http"}


#: The seed's name for a prompt handle: the one job class.
SeedPromptJob = PromptJob


def read_json(path: Union[str, os.PathLike[str]]) -> Any:
    """Parse a JSON file (UTF-8, a BOM tolerated): e.g. a workflow exported in API format.
    A missing or malformed file raises :class:`~comfysync.errors.WorkflowFormatError`."""
    return read_json_file(path)


class ComfyClient(ComfyApi):
    """A :class:`~comfysync.ComfyApi` that also answers to the comfy-api-client method names."""

    def submit_workflow(
        self, workflow: WorkflowLike, return_future: bool = True, **kwargs: Any
    ) -> PromptJob:
        """:meth:`ComfyApi.submit`; with ``return_future=False`` the prompt's ``future`` is
        None, as in comfy-api-client, and the result is fetched with :meth:`fetch_results`."""
        job = self.submit(workflow, **kwargs)
        if return_future:
            return job
        return PromptJob(job._state, job._tracker, future=False)

    def fetch_results(self, prompt: PromptJob, timeout: Optional[float] = None) -> PromptResult:
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


def _output_images(result: PromptResult) -> OutputFiles:
    """``result.output_images``: the seed's name for ``result.images``."""
    return result.images


def _image(file: OutputFile) -> Any:
    """``file.image``: the seed's name for ``file.to_pil()`` (a ``PIL.Image.Image``)."""
    return file.to_pil()


def _add_seed_names() -> None:
    """Give the lower layers the seed's names (see the module docstring). Class attributes,
    so slotted instances see them; idempotent."""
    events.add_key_alias("all", events.ALL)
    events.add_key_alias("execution_complete", events.ExecutionSuccess.TYPE)
    seed_names = (
        (PromptResult, "output_images", _output_images),
        (OutputFile, "image", _image),
    )
    for cls, name, getter in seed_names:
        setattr(cls, name, property(getter, doc=getter.__doc__))


_add_seed_names()
