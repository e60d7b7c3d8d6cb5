"""What errors say: ComfyUI's own 503 is not blamed on a proxy, a missing ``/view`` file is
named, and ``ComfyApi()`` without a URL reads ``$COMFYUI_URL``."""

from __future__ import annotations

from typing import Iterator

import pytest
from _origin_servers import Answer, RecordingServer

from comfysync import ComfyApi
from comfysync.errors import ComfyHTTPError
from comfysync.testing import FakeComfyUI

NGINX_503 = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
             b"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
             b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@pytest.fixture
def proxy() -> Iterator[RecordingServer]:
    with RecordingServer("127.0.0.1") as server:
        yield server


def test_comfyuis_own_503_is_not_labelled_as_a_proxys(fake_server: FakeComfyUI) -> None:
    fake_server.faults.fail_route(
        "/system_stats", 503,
        {"error": {"code": "SERVICE_DISABLED", "message": "the feature is disabled"}})
    api = ComfyApi(fake_server.url, tracker="http", retries=0)
    try:
        with pytest.raises(ComfyHTTPError) as info:
            api.get_system_stats()
    finally:
        api.close()
    message = str(info.value)
    assert info.value.status == 503 and "SERVICE_DISABLED" in message
    assert "proxy could not reach" not in message and "server itself" in message


def test_aiohttp_default_503_text_is_the_servers(proxy: RecordingServer) -> None:
    proxy.routes["/system_stats"] = Answer(503, {"Content-Type": "text/plain"},
                                           b"503: Service Unavailable")
    api = ComfyApi(proxy.url, tracker="http", retries=0)
    try:
        with pytest.raises(ComfyHTTPError) as info:
            api.get_system_stats()
    finally:
        api.close()
    assert "server itself" in str(info.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxys_gateway_error_is_labelled_as_such(proxy: RecordingServer,
                                                    status: int) -> None:
    proxy.routes["/system_stats"] = Answer(status, {"Content-Type": "text/html",
                                                    "Server": "nginx/1.25.3"}, NGINX_503)
    api = ComfyApi(proxy.url, tracker="http", retries=0)
    try:
        with pytest.raises(ComfyHTTPError) as info:
            api.get_system_stats()
    finally:
        api.close()
    assert "a proxy could not reach ComfyUI" in str(info.value)


def test_view_404_names_the_missing_file(fake_server: FakeComfyUI, tmp_path: object) -> None:
    api = ComfyApi(fake_server.url, tracker="http")
    try:
        with pytest.raises(ComfyHTTPError) as info:
            api.get_image({"filename": "gone.png", "subfolder": "sub", "type": "temp"})
        with pytest.raises(ComfyHTTPError) as info2:
            api.download("missing_00001_.png", str(tmp_path))
    finally:
        api.close()
    assert info.value.status == 404
    assert "'gone.png'" in str(info.value) and "'sub'" in str(info.value)
    assert "'temp'" in str(info.value)
    assert "'missing_00001_.png'" in str(info2.value) and "'output'" in str(info2.value)


def test_comfyapi_without_url_reads_comfyui_url(fake_server: FakeComfyUI,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_URL", fake_server.url)
    with ComfyApi(tracker="http") as api:
        assert api.url == fake_server.url
        assert api.get_queue_remaining() == 0
    monkeypatch.delenv("COMFYUI_URL")
    api = ComfyApi(tracker="http")
    assert api.url == "http://127.0.0.1:8188"
    api.close()


def test_a_malformed_comfyui_url_names_the_variable_not_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMFYUI_URL", "ftp://user:hunter2@host")
    with pytest.raises(ValueError) as info:
        ComfyApi()
    assert "$COMFYUI_URL" in str(info.value) and "hunter2" not in str(info.value)
