"""comfysync — the synchronous, blocking Python SDK for the ComfyUI server.

Public names are re-exported here; the modules that define them are private
(``_client``, ``_workflow``, …) except :mod:`comfysync.errors`, :mod:`comfysync.events`
and :mod:`comfysync.testing`. Classes re-exported from a private module report
``__module__ == "comfysync"``, the name users import them by (in reprs, docs and pickles).
"""

from __future__ import annotations

from . import errors, events, utils
from ._client import ComfyApi
from ._compat import ComfyClient, SeedPromptJob, create_client
from ._pool.policies import ServerSpec, ServerStats, ServerView
from ._pool.pool import ComfyPool, PoolFuture, PoolSubscription
from ._rest.models import (
    FileRef,
    HistoryEntry,
    InputSpec,
    NodeDef,
    QueuedPrompt,
    QueueItem,
    QueueState,
    SamplerInfo,
    SystemStats,
)
from ._results import OutputFile, PromptResult
from ._tracking.job import JobProgress, PromptJob
from ._types import JobStatus, TrackerMode, WorkflowLike
from ._version import __version__
from ._workflow.workflow import Node, Workflow
from .errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
    ConnectTimeoutError,
    PoolClosedError,
    PoolFullError,
    PromptError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
    UnsafePathError,
    UnsupportedError,
    WorkflowFormatError,
)

__all__ = [
    "__version__",
    "errors",
    "events",
    "ComfyError",
    "ComfyConnectionError",
    "ComfyTimeoutError",
    "ConnectTimeoutError",
    "ComfyHTTPError",
    "PromptValidationError",
    "PromptError",
    "PromptExecutionError",
    "PromptInterruptedError",
    "PromptLostError",
    "PromptTimeoutError",
    "WorkflowFormatError",
    "UnsupportedError",
    "UnsafePathError",
    "PoolFullError",
    "PoolClosedError",
    "ComfyApi",
    "PromptJob",
    "JobProgress",
    "PromptResult",
    "OutputFile",
    "create_client",
    "ComfyClient",
    "SeedPromptJob",
    "utils",
    "QueuedPrompt",
    "QueueState",
    "QueueItem",
    "HistoryEntry",
    "SystemStats",
    "NodeDef",
    "InputSpec",
    "FileRef",
    "SamplerInfo",
    "Workflow",
    "Node",
    "ComfyPool",
    "PoolFuture",
    "PoolSubscription",
    "ServerSpec",
    "ServerStats",
    "ServerView",
    "WorkflowLike",
    "JobStatus",
    "TrackerMode",
]


def _report_public_module() -> None:
    """Give every class re-exported from a private module the module users import it from."""
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type) and value.__module__.startswith(__name__ + "._"):
            value.__module__ = __name__


_report_public_module()
