"""comfysync.celery pieces without a broker: settings, prompt ids, result documents, and the
error a failed task hands to the process reading its result."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

pytest.importorskip("celery")

from celery import Celery  # noqa: E402

from comfysync._rest.models import HistoryEntry  # noqa: E402
from comfysync._results import build_result  # noqa: E402
from comfysync.celery import (  # noqa: E402
    ComfyTask,
    ComfyTaskError,
    WorkflowRun,
    install,
    prompt_id_for,
    settings_of,
)
from comfysync.celery._documents import error_fields, is_retriable  # noqa: E402
from comfysync.celery._settings import read_settings  # noqa: E402
from comfysync.errors import (  # noqa: E402
    ComfyConnectionError,
    ComfyHTTPError,
    PoolClosedError,
    PoolFullError,
    PromptExecutionError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
)


def test_servers_from_config_or_environment() -> None:
    one = read_settings({"servers": ["gpu1:8188"], "token": "t"}, environ={})
    assert one.servers == ("gpu1:8188",) and not one.pool
    assert one.client_options == {"token": "t"}
    two = read_settings(None, environ={"COMFYSYNC_SERVERS": "gpu1:8188, gpu2:8188"})
    assert two.servers == ("gpu1:8188", "gpu2:8188") and two.pool
    assert read_settings({"servers": "a:1 b:2"}, environ={}).servers == ("a:1", "b:2")
    assert read_settings({"servers": ["a:1"], "policy": "round_robin"}, environ={}).pool


def test_bad_settings_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="no ComfyUI server configured"):
        read_settings({}, environ={})
    with pytest.raises(ValueError, match="did you mean 'timeout'"):
        read_settings({"servers": ["a:1"], "timout": 5}, environ={})
    with pytest.raises(ValueError, match="cannot set client_id"):
        read_settings({"servers": ["a:1"], "client_id": "x"}, environ={})
    with pytest.raises(ValueError, match="several servers need a ComfyPool"):
        read_settings({"servers": ["a:1", "b:2"], "pool": False}, environ={})
    with pytest.raises(ValueError, match="max_retries"):
        read_settings({"servers": ["a:1"], "max_retries": -1}, environ={})
    with pytest.raises(TypeError, match="must be a mapping"):
        read_settings(["a:1"], environ={})  # type: ignore[arg-type]


def test_settings_come_from_the_app_and_install_creates_no_client() -> None:
    app = Celery("units", set_as_current=False)
    app.conf.comfysync = {"servers": ["127.0.0.1:9"], "progress_interval": 1}
    task = install(app)
    assert install(app) is task
    assert task.name == "comfysync.run_workflow" and isinstance(task, ComfyTask)
    assert task.acks_late and task.reject_on_worker_lost
    assert settings_of(app).progress_interval == 1.0
    from comfysync.celery._task import _state_of

    assert not _state_of(app).client.created


def test_prompt_ids_derive_from_the_task_id() -> None:
    first = prompt_id_for("task-1")
    assert first == prompt_id_for("task-1") != prompt_id_for("task-2")
    assert prompt_id_for("task-1", 1) not in (first, prompt_id_for("task-1", 2))
    import uuid

    assert str(uuid.UUID(first)) == first  # canonical form, as servers require


def _result(outputs: Dict[str, Any]) -> Any:
    entry = HistoryEntry.from_wire("p1", {"outputs": outputs,
                                          "status": {"status_str": "success"}})
    return build_result("p1", history=entry, executed={})


def test_result_document_is_plain_json(tmp_path: Path) -> None:
    import json

    result = _result({"9": {"images": [{"filename": "a.png", "subfolder": "x", "type": "output"}]},
                      "7": {"text": ["hello"]}})
    doc = WorkflowRun(result, "http://gpu1:8188", (tmp_path / "a.png",)).to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["prompt_id"] == "p1" and doc["server"] == "http://gpu1:8188"
    assert doc["status"] == "success" and doc["text"] == {"7": ["hello"]}
    assert doc["files"] == [{"node_id": "9", "filename": "a.png", "subfolder": "x",
                             "type": "output", "url": "", "saved_to": str(tmp_path / "a.png")}]
    assert "saved_to" not in WorkflowRun(result, None).to_json()["files"][0]


def test_which_failures_are_retried() -> None:
    assert is_retriable(ComfyConnectionError("down"))
    assert is_retriable(PromptLostError("gone", prompt_id="p"))
    assert is_retriable(ComfyHTTPError(503, "http://x/prompt"))
    assert not is_retriable(ComfyHTTPError(404, "http://x/prompt"))
    assert not is_retriable(PromptTimeoutError("late", prompt_id="p"))
    assert not is_retriable(PromptValidationError({"message": "bad"}, {}))
    assert not is_retriable(PromptExecutionError(prompt_id="p", node_id="3"))
    assert is_retriable(PoolClosedError("closed"))
    assert is_retriable(PoolFullError("full", max_queued=1))


def test_task_error_survives_celerys_json_result_serialisation() -> None:
    exc = PromptExecutionError(prompt_id="p", node_id="3", node_type="KSampler",
                               exception_type="RuntimeError", exception_message="boom",
                               traceback=["line 1\n", "line 2\n"])
    error = ComfyTaskError(str(exc), error_fields(exc, prompt_id="p", server="http://s"))
    app = Celery("units", backend="cache+memory://", set_as_current=False)
    backend = app.backend
    stored = backend.prepare_exception(error, "json")
    import json

    back = backend.exception_to_python(json.loads(json.dumps(stored)))
    assert isinstance(back, ComfyTaskError) and str(back) == str(error)
    assert back.kind == "execution_error" and back.prompt_id == "p" and back.server == "http://s"
    assert back.fields["node_id"] == "3" and back.fields["traceback"] == "line 1\nline 2\n"
    assert back.fields["exception_message"] == "boom"


def test_an_unreachable_server_is_retried_then_the_task_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from _celery_procs import free_port

    caplog.set_level("WARNING", logger="comfysync.celery")
    app = Celery("units", set_as_current=False)
    app.conf.comfysync = {"servers": [f"127.0.0.1:{free_port()}"], "max_retries": 2,
                          "retry_backoff": 0.0, "timeout": 2}
    task = install(app)
    outcome = task.apply(args=[{"1": {"class_type": "EmptyImage", "inputs": {}}}])
    error = outcome.result
    assert isinstance(error, ComfyTaskError), error
    assert error.kind == "unreachable" and error.prompt_id == prompt_id_for(outcome.id)
    assert outcome.state == "FAILURE"
    retries = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert [m.rsplit("retry ", 1)[1].split()[0] for m in retries] == ["1/2", "2/2"]
    from comfysync.celery._task import _close_clients

    _close_clients()


def test_a_bad_timeout_fails_the_task_before_anything_is_sent() -> None:
    from _celery_procs import free_port

    app = Celery("units", set_as_current=False)
    app.conf.comfysync = {"servers": [f"127.0.0.1:{free_port()}"], "max_retries": 0}
    task = install(app)
    for bad in ("600", -1):
        error = task.apply(args=[{}], kwargs={"timeout": bad}).result
        assert isinstance(error, ComfyTaskError) and error.kind == "invalid_argument", error
        assert "timeout" in str(error)
    from comfysync.celery._task import _state_of

    assert not _state_of(app).client.created, "no client was even made"


def test_a_result_backend_that_cannot_store_progress_does_not_fail_the_render(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from _celery_procs import free_port

    from comfysync.testing import FakeComfyUI

    caplog.set_level("WARNING", logger="comfysync.celery")
    wf = {"1": {"class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
          "2": {"class_type": "ProbeProgress",
                "inputs": {"image": ["1", 0], "steps": 20, "delay_ms": 20, "preview": "none",
                           "seed": 0}},
          "3": {"class_type": "ProbeText", "inputs": {"text": "ok", "image": ["2", 0]}}}
    with FakeComfyUI() as server:
        app = Celery("units", set_as_current=False,  # a result backend nobody listens on
                     backend=f"redis://127.0.0.1:{free_port()}/1")
        app.conf.comfysync = {"servers": [server.url], "progress_interval": 0.01}
        task = install(app)
        try:
            outcome = task.apply(args=[wf])
            doc = outcome.get()
        finally:
            from comfysync.celery._task import _close_clients

            _close_clients()
    assert doc["status"] == "success" and doc["text"]["3"][0] == "ok"
    warnings = [r.getMessage() for r in caplog.records if "cannot publish" in r.getMessage()]
    assert len(warnings) == 1


def test_save_to_of_a_redelivered_task_reuses_the_folder_an_earlier_attempt_saved(
    tmp_path: Path,
) -> None:
    """Files land in <save_to>/<prompt id>/ complete or not at all; a second attempt (a
    redelivered task) reports the same paths and writes no ``-1`` copies; a folder there
    that is no complete save is refused, not mixed into."""
    from comfysync import ComfyApi
    from comfysync.celery._task import SAVED_RECORD, save_once
    from comfysync.testing import FakeComfyUI

    wf = {"1": {"class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
          "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                      "filename_prefix": "same"}}}
    with FakeComfyUI() as server, ComfyApi(server.url) as api:
        result = api.run_workflow(wf, timeout=30)
        assert len(result.files) == 2
        first = save_once(result, tmp_path)
        folder = tmp_path / result.prompt_id
        assert [p.parent for p in first] == [folder, folder]
        contents = {p: p.read_bytes() for p in first}
        (tmp_path / f".{result.prompt_id}.left.partial").mkdir()  # a killed attempt's leftover
        again = save_once(result, tmp_path)
        assert again == first
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [p.name for p in first] + [SAVED_RECORD])
        assert {p: p.read_bytes() for p in again} == contents
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")
                    and p.name != f".{result.prompt_id}.left.partial"]

        other = api.run_workflow(wf, timeout=30)
        (tmp_path / other.prompt_id).mkdir()
        (tmp_path / other.prompt_id / "mine.txt").write_text("not a save")
        with pytest.raises(ComfyTaskError) as info:
            save_once(other, tmp_path)
        assert info.value.kind == "saving"
        assert sorted(p.name for p in (tmp_path / other.prompt_id).iterdir()) == ["mine.txt"]
