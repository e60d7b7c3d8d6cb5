"""The default workflow in UI format, converted and run on FakeComfyUI (127.0.0.1)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

pytest.importorskip("aiohttp", reason="FakeComfyUI needs the 'testing' extra")
testing = pytest.importorskip("comfysync.testing")

from comfysync import ComfyApi, Workflow  # noqa: E402

FakeComfyUI = testing.FakeComfyUI


@pytest.fixture
def server() -> Any:
    fake = FakeComfyUI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def test_converted_default_workflow_runs(server: Any, default_ui: Dict[str, Any]) -> None:
    """Convert with the server's own /object_info (NodeDef objects), queue, and check that
    the fake executed every node and saved the image."""
    with ComfyApi(server.url) as api:
        wf = Workflow.from_ui(default_ui, api.get_node_defs())
        assert wf.validate(api.get_node_defs()) == []
        wf.set("Positive prompt.text", "a lighthouse at dusk")
        queued = api.queue_prompt(wf)
        server.wait_until(lambda: queued.prompt_id in server.history(), timeout=30)
        entry = api.get_history(queued.prompt_id)
    assert entry is not None and entry.status_str == "success"
    assert entry.prompt["6"]["inputs"]["text"] == "a lighthouse at dusk"
    images = entry.outputs["9"]["images"]
    assert len(images) == 1 and images[0]["type"] == "output"


def test_run_workflow_accepts_the_ui_json(server: Any, default_ui: Dict[str, Any]) -> None:
    """``api.run_workflow(ui_json)`` converts with the server's node definitions."""
    if not hasattr(ComfyApi, "run_workflow"):
        pytest.skip("ComfyApi.run_workflow is not part of this build yet")
    with ComfyApi(server.url) as api:
        from_ui = api.run_workflow(default_ui, timeout=30)
        from_workflow = api.run_workflow(
            Workflow.from_ui(default_ui, api.get_node_defs()), timeout=30
        )
    for result in (from_ui, from_workflow):
        assert result.status == "success"
        assert [f.node_id for f in result.images] == ["9"]
    prompts = [e["prompt"][2] for e in server.history().values()]
    assert len(prompts) == 2 and prompts[0] == prompts[1]
    assert prompts[0]["6"]["_meta"] == {"title": "Positive prompt"}


def test_node_definitions_are_fetched_once_per_client(
    server: Any, default_ui: Dict[str, Any]
) -> None:
    """Converting UI-format workflows reads /object_info once per client, not once per run."""
    with ComfyApi(server.url) as api:
        for _ in range(3):
            assert api.run_workflow(default_ui, timeout=30).status == "success"
    fetches = [r for r in server.requests if r.path.rstrip("/").endswith("/object_info")]
    assert len(fetches) == 1
