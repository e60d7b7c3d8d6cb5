"""The public surface of ``comfysync``: ``__all__`` pinned (a name added or dropped is a
decision, made here), every class reports the module users import it from, and the type
aliases of the signatures are importable."""

from __future__ import annotations

import pickle
from typing import get_args

import comfysync

PUBLIC = [
    "__version__", "errors", "events", "utils",
    # errors
    "ComfyError", "ComfyConnectionError", "ComfyTimeoutError", "ConnectTimeoutError",
    "ComfyHTTPError", "PromptValidationError", "PromptError", "PromptExecutionError",
    "PromptInterruptedError", "PromptLostError", "PromptTimeoutError", "WorkflowFormatError",
    "UnsupportedError", "UnsafePathError", "PoolFullError", "PoolClosedError",
    # client, jobs, results
    "ComfyApi", "PromptJob", "JobProgress", "PromptResult", "OutputFile",
    # comfy-api-client compatibility
    "create_client", "ComfyClient", "SeedPromptJob",
    # REST models
    "QueuedPrompt", "QueueState", "QueueItem", "HistoryEntry", "SystemStats", "NodeDef",
    "InputSpec", "FileRef", "SamplerInfo",
    # workflows
    "Workflow", "Node",
    # pool
    "ComfyPool", "PoolFuture", "PoolSubscription", "ServerSpec", "ServerStats", "ServerView",
    # types of the signatures
    "WorkflowLike", "JobStatus", "TrackerMode",
]


def test_all_is_pinned() -> None:
    assert sorted(comfysync.__all__) == sorted(PUBLIC)
    assert len(set(comfysync.__all__)) == len(comfysync.__all__)
    for name in comfysync.__all__:
        assert hasattr(comfysync, name), name


def test_public_classes_report_the_public_module() -> None:
    classes = [getattr(comfysync, n) for n in comfysync.__all__]
    classes = [c for c in classes if isinstance(c, type)]
    assert len(classes) > 30
    for cls in classes:
        # errors and events are public modules of their own; everything else is "comfysync"
        assert cls.__module__ in ("comfysync", "comfysync.errors", "comfysync.events"), cls
    assert comfysync.Workflow.__module__ == "comfysync"
    assert comfysync.ComfyApi.__module__ == "comfysync"
    assert comfysync.NodeDef.__module__ == "comfysync"


def test_renamed_modules_still_pickle() -> None:
    node = comfysync.NodeDef.from_wire("X", {"input": {"required": {"a": ["INT", {}]}}})
    assert pickle.loads(pickle.dumps(node)) == node
    wf = comfysync.Workflow({"1": {"class_type": "X", "inputs": {}}})
    assert pickle.loads(pickle.dumps(wf)) == wf


def test_type_aliases() -> None:
    assert set(get_args(comfysync.JobStatus)) == {
        "pending", "running", "success", "error", "interrupted", "lost"}
    assert set(get_args(comfysync.TrackerMode)) == {"auto", "websocket", "http"}
    assert isinstance(comfysync.Workflow(), comfysync._types.SupportsToDict)
