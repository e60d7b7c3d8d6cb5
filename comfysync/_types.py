"""Type aliases of the public signatures: what may be passed as a workflow, and the names of
statuses and tracker modes.

The bottom of the package (it imports nothing of comfysync), so every layer may use it.
``Workflow`` satisfies :class:`SupportsToDict`, so ``WorkflowLike`` covers it without this
module importing the workflow layer.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Literal, Mapping, Protocol, Union, runtime_checkable

__all__ = ["JobStatus", "SupportsToDict", "TrackerMode", "WorkflowLike"]


@runtime_checkable
class SupportsToDict(Protocol):
    """Anything with ``to_dict()`` returning an API-format prompt (e.g. ``Workflow``)."""

    def to_dict(self) -> Dict[str, Any]: ...


#: What every entry point takes as a workflow: a ``Workflow`` (or anything with
#: ``to_dict()``), an API-format mapping, a ``/prompt`` request body, a UI-format graph
#: (converted with the server's node definitions), or a path to a JSON file or a ComfyUI PNG.
WorkflowLike = Union[SupportsToDict, Mapping[str, Any], str, os.PathLike[str]]

#: A prompt's status, as ``PromptJob.status`` reports it (``PromptResult.status`` is the
#: server's own word from the history entry, ``"success"`` for a result).
JobStatus = Literal["pending", "running", "success", "error", "interrupted", "lost"]

#: How a client follows its prompts: ``ComfyApi(tracker=...)``.
TrackerMode = Literal["auto", "websocket", "http"]
