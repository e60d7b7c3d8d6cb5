"""The commands that are REST calls (stats, queue, history, nodes, interrupt, upload, download)
never open a WebSocket: a server refusing sockets changes nothing for them, and their errors
are the HTTP ones, not the socket's."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, List

import pytest
from _cli import run_cli

from comfysync import ComfyApi, cli

REST_COMMANDS = [
    ["stats"],
    ["queue"],
    ["history"],
    ["nodes"],
    ["nodes", "EmptyImage"],
    ["interrupt"],
    ["upload", "photo.png"],
    ["download", "photo.png", "--type", "input", "--out", "dl"],
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("argv", REST_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_rest_commands_never_open_a_websocket(
    fake_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, argv: List[str],
) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "photo.png")
    with ComfyApi(fake_server.url) as api:  # the file `download` fetches
        api.upload_image(tmp_path / "photo.png")
    connects: List[str] = []

    def no_connect(self: ComfyApi, timeout: float = 10.0) -> ComfyApi:
        connects.append(self.url)
        raise AssertionError("a REST-only command called connect()")

    monkeypatch.setattr(ComfyApi, "connect", no_connect)
    fake_server.refuse_websockets(None)
    fake_server.faults.clear_requests()
    code, out, err = run_cli(capsys, *argv, "--server", fake_server.url)
    assert code == cli.EXIT_OK, err
    assert err == "" and out  # no WARNING about a refused socket
    assert connects == []
    assert not any(r.path.endswith("/ws") for r in fake_server.requests)


def test_rest_command_errors_are_the_http_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "stats", "--server", f"127.0.0.1:{closed_port()}")
    assert code == cli.EXIT_CONNECT and err.count("\n") == 1
    assert "GET http://127.0.0.1:" in err and "/system_stats" in err
    assert "is ComfyUI running, and listening on this host and port" in err
    assert "WebSocket" not in err and "ws://" not in err


def test_rest_command_with_a_wrong_prefix_is_an_http_404(
    fake_server: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(capsys, "queue", "--server", fake_server.url + "/wrong")
    assert code == cli.EXIT_FAILED and err.count("\n") == 1
    assert "/wrong/queue failed with HTTP 404" in err
    assert "check the path prefix '/wrong' in the server URL" in err
    assert "WebSocket" not in err and "ws://" not in err


@pytest.fixture(autouse=True)
def _isolated(isolated_cli: None) -> None:
    """Every test of this module runs with the ``isolated_cli`` fixture (tests/conftest.py)."""
