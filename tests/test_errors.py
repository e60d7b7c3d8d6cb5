"""The exception tree: hierarchy, constructor keywords, and message formats."""

from __future__ import annotations

from typing import Any, Dict

import pytest
from _recordings import exchanges

import comfysync
from comfysync import errors
from comfysync.errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
    ConnectTimeoutError,
    PromptError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
    UnsafePathError,
    WorkflowFormatError,
)

VALIDATION = [e["body"] for e in exchanges("submit_validation_errors") if e["status"] == 400]


def test_hierarchy() -> None:
    assert issubclass(PromptValidationError, ComfyHTTPError)
    for cls in (ComfyConnectionError, ComfyTimeoutError, ComfyHTTPError, PromptError,
                WorkflowFormatError, UnsafePathError):
        assert issubclass(cls, ComfyError)
    for cls in (PromptExecutionError, PromptInterruptedError, PromptLostError,
                PromptTimeoutError):
        assert issubclass(cls, PromptError)
    assert issubclass(PromptTimeoutError, ComfyTimeoutError)
    assert issubclass(ConnectTimeoutError, ComfyConnectionError)
    assert issubclass(ConnectTimeoutError, ComfyTimeoutError)


def test_connect_timeout_error_carries_the_url() -> None:
    err = ConnectTimeoutError("WebSocket ws://h:8188/ws did not open within 5 s",
                              url="ws://h:8188/ws")
    assert err.url == "ws://h:8188/ws" and "did not open" in str(err)
    assert comfysync.ConnectTimeoutError is ConnectTimeoutError
    from comfysync._ws.listener import ConnectTimeoutError as from_listener

    assert from_listener is ConnectTimeoutError  # the old import path keeps working
    assert issubclass(WorkflowFormatError, ValueError)
    assert issubclass(UnsafePathError, ValueError)


def test_every_error_is_reexported_at_top_level() -> None:
    for name in errors.__all__:
        assert getattr(comfysync, name) is getattr(errors, name), name


def test_http_error_fields_and_preview() -> None:
    body = "500 Internal Server Error\n\nServer got itself in trouble"
    err = ComfyHTTPError(500, "http://h:8188/prompt", body, method="POST")
    assert (err.status, err.url, err.body, err.method) == (500, "http://h:8188/prompt", body,
                                                           "POST")
    assert str(err) == ("POST http://h:8188/prompt failed with HTTP 500: "
                        "500 Internal Server Error\nServer got itself in trouble")
    long_body = "\n".join(f"line {i}" for i in range(50))
    text = str(ComfyHTTPError(502, "u", long_body))
    assert "line 4" in text and "line 5" not in text and text.endswith("…")
    assert len(str(ComfyHTTPError(500, "u", "x" * 5000))) < 600
    assert str(ComfyHTTPError(404, "u", "")) == "GET u failed with HTTP 404"
    assert "Duplicate" in str(ComfyHTTPError(400, "u", {"error": "Duplicate username."}))
    assert str(ComfyHTTPError(400, "u", b"raw bytes")).endswith("raw bytes")


def _node_lines(body: Dict[str, Any]) -> list:  # type: ignore[type-arg]
    return [ln.strip() for ln in str(PromptValidationError(body["error"],
                                                           body["node_errors"])).splitlines()[1:]]


def test_validation_message_per_real_body() -> None:
    by_type = {b["error"]["type"]: b for b in VALIDATION}
    assert set(by_type) == {"invalid_prompt", "prompt_outputs_failed_validation",
                            "prompt_no_outputs", "no_prompt"}
    assert str(PromptValidationError(by_type["prompt_no_outputs"]["error"], {})) == (
        "Prompt has no outputs")
    assert str(PromptValidationError(by_type["no_prompt"]["error"], {})) == (
        "No prompt provided — No prompt provided")
    dangling = [b for b in VALIDATION if "2" in b["node_errors"]][0]
    assert _node_lines(dangling) == [
        "node 2 (SaveImage): Exception when validating node — '99'"]
    err = PromptValidationError(dangling["error"], dangling["node_errors"], url="http://h/prompt",
                                body=dangling)
    assert err.status == 400 and err.url == "http://h/prompt" and err.method == "POST"
    assert err.error_type == "prompt_outputs_failed_validation"
    assert err.node_errors["2"]["class_type"] == "SaveImage"


def test_validation_message_odd_node_errors() -> None:
    err = PromptValidationError({"message": "bad"}, {"5": "text", "6": {"class_type": "X"},
                                                     "7": {"errors": ["plain"]}})
    assert str(err).splitlines()[1:] == ["  node 5: text", "  node 6 (X): invalid",
                                         "  node 7 (?): plain"]
    assert str(PromptValidationError({}, {})) == "Prompt rejected"


def test_connection_timeout_and_prompt_errors() -> None:
    assert ComfyConnectionError("down", url="http://h:1/x").url == "http://h:1/x"
    assert ComfyTimeoutError("slow").url is None
    exec_err = PromptExecutionError(
        prompt_id="p", node_id="2", node_type="ProbeFail", exception_type="RuntimeError",
        exception_message="boom from probe\n", traceback=["a\n", "b\n"], executed=["1"])
    assert str(exec_err) == "prompt p failed in node 2 (ProbeFail): RuntimeError: boom from probe"
    assert exec_err.traceback_text == "a\nb\n" and exec_err.prompt_id == "p"
    interrupted = PromptInterruptedError(prompt_id="p", node_id="2", node_type="ProbeSleep")
    assert str(interrupted) == "prompt p was interrupted in node 2 (ProbeSleep)"
    assert interrupted.cancelled is False
    cancelled = PromptInterruptedError(prompt_id="p", node_id="2", node_type="ProbeSleep",
                                       cancelled=True)
    assert str(cancelled) == "prompt p was cancelled: interrupted in node 2 (ProbeSleep)"
    assert cancelled.cancelled is True
    dequeued = PromptInterruptedError.removed_from_queue("p")
    assert str(dequeued) == "prompt p was cancelled (removed from the queue before it ran)"
    assert dequeued.cancelled is True and dequeued.node_id is None and dequeued.executed == []
    assert PromptLostError("gone", prompt_id="p").prompt_id == "p"
    timeout = PromptTimeoutError("late", prompt_id="p", timeout=3.0)
    assert timeout.timeout == 3.0 and timeout.url is None and timeout.job is None
    unsafe = UnsafePathError("no", filename="..", directory="/tmp/x")
    assert (unsafe.filename, unsafe.directory) == ("..", "/tmp/x")


def test_catching_base_class() -> None:
    with pytest.raises(ComfyError):
        raise PromptValidationError(VALIDATION[0]["error"], VALIDATION[0]["node_errors"])
