"""Results outlive their client: ``read()``, ``save()``, ``to_pil()`` and notebook display
after ``with ComfyApi(...)`` / ``with ComfyPool(...)`` ended, with the same URL and
credentials on a short-lived connection, never shown in reprs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from _origin_servers import SECRET_KEY, SECRET_TOKEN, RecordingServer

from comfysync import ComfyApi, ComfyPool
from comfysync._http.transport import HttpTransport
from comfysync.testing import FakeComfyUI


def workflow(prefix: str = "after") -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                      "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": prefix}},
    }


@pytest.fixture
def front(fake_server: FakeComfyUI) -> Iterator[RecordingServer]:
    """A recording reverse proxy in front of FakeComfyUI: shows the credentials each request
    carried."""
    with RecordingServer("127.0.0.1", upstream=fake_server.url) as proxy:
        yield proxy


def check_usable(result: Any, tmp_path: Path) -> None:
    image = result.images[0]
    data = image.read()
    assert data.startswith(b"\x89PNG")
    saved = image.save(tmp_path)
    assert saved.read_bytes() == data
    assert image.to_pil().size == (8, 8)
    assert image._repr_png_() == data  # notebook display
    bundle = result._repr_mimebundle_()
    assert "image/png" in bundle or "<img" in bundle.get("text/html", "")
    assert [p.read_bytes() for p in result.save_all(tmp_path / "all")] == [data]


def test_client_results_work_after_the_with_block(fake_server: FakeComfyUI,
                                                  tmp_path: Path) -> None:
    with ComfyApi(fake_server.url) as api:
        result = api.run_workflow(workflow(), timeout=30)
    assert api.closed
    check_usable(result, tmp_path)


def test_pool_results_work_after_the_with_block(fake_server: FakeComfyUI,
                                                tmp_path: Path) -> None:
    with ComfyPool([fake_server.url]) as pool:
        result = pool.run_workflow(workflow(), timeout=30)
    check_usable(result, tmp_path)


def test_after_close_the_same_credentials_go_to_the_same_server(
    front: RecordingServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="comfysync")
    with ComfyApi(front.url, tracker="http", token=SECRET_TOKEN,
                  headers={"X-Api-Key": SECRET_KEY}) as api:
        result = api.run_workflow(workflow(), timeout=30)
    before = len(front.requests())
    result.images[0].save(tmp_path)
    late = front.requests()[before:]
    assert [r.path.split("?")[0] for r in late] == ["/view"]
    assert late[0].headers["authorization"] == f"Bearer {SECRET_TOKEN}"
    assert late[0].headers["x-api-key"] == SECRET_KEY
    shown = " ".join([repr(result), repr(result.images[0]), str(result.images[0]),
                      repr(result.images[0]._client), caplog.text])
    assert SECRET_TOKEN not in shown and SECRET_KEY not in shown


def test_a_fresh_transport_keeps_tls_and_retry_settings(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    live = HttpTransport("https://127.0.0.1:9", verify=str(bundle), retries=5, timeout=(2, 7),
                         token=SECRET_TOKEN)
    fresh = HttpTransport.from_settings(live.settings)
    try:
        assert fresh.verify == str(bundle) and fresh.timeout == (2.0, 7.0)
        assert fresh.settings == live.settings and fresh.settings.retries.total == 5
        assert fresh.ws_headers() == [f"Authorization: Bearer {SECRET_TOKEN}"]
        assert SECRET_TOKEN not in repr(live.settings)
    finally:
        live.close()
        fresh.close()
