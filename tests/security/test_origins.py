"""Credentials go only to the origin of the server URL, on every HTTP path.

Two real servers on loopback: the "server" on 127.0.0.1 and "elsewhere" on 127.0.0.2 (another
origin). The server answers with redirects to elsewhere; elsewhere records what it received.
An API call redirected elsewhere is refused (elsewhere gets nothing); a file download is
followed without any credential; a same-origin redirect keeps working with them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest
from _origin_servers import (
    OTHER_HOST,
    SECRET_KEY,
    SECRET_PW,
    SECRET_TOKEN,
    Answer,
    RecordingServer,
    json_answer,
    redirect,
)

from comfysync import ComfyApi, ComfyPool
from comfysync._http.transport import HttpTransport
from comfysync.cli import main as cli_main
from comfysync.errors import ComfyConnectionError, ComfyError
from comfysync.testing import FakeComfyUI

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
QUEUE = '{"exec_info": {"queue_remaining": 0}}'

#: every way of giving a credential, as ComfyApi keyword arguments (+ the URL's user info)
CREDENTIALS = {
    "token": ({"token": SECRET_TOKEN}, False),
    "auth": ({"auth": ("user", SECRET_PW)}, False),
    "headers": ({"headers": {"X-Api-Key": SECRET_KEY}}, False),
    "url": ({}, True),
    "all": ({"token": SECRET_TOKEN, "headers": {"X-Api-Key": SECRET_KEY,
                                                "Cookie": "session=" + SECRET_KEY}}, False),
}


@pytest.fixture
def servers() -> Iterator[Tuple[RecordingServer, RecordingServer]]:
    elsewhere = RecordingServer(OTHER_HOST, {"/signed/out.png": Answer(200, {}, PNG),
                                             "/prompt": json_answer(QUEUE)})
    server = RecordingServer("127.0.0.1")
    try:
        yield server, elsewhere
    finally:
        server.close()
        elsewhere.close()


@contextlib.contextmanager
def client(server: RecordingServer, kind: str) -> Iterator[ComfyApi]:
    """A client of ``server`` with the credentials of ``kind``, for REST calls (never
    connected), closed at the end."""
    kwargs, in_url = CREDENTIALS[kind]
    url = f"http://user:{SECRET_PW}@127.0.0.1:{server.port}" if in_url else server.url
    api = ComfyApi(url, tracker="http", **kwargs)
    try:
        yield api
    finally:
        api.close()


def assert_credentials_arrived(server: RecordingServer, kind: str) -> None:
    got = server.requests()[0].headers
    if kind in ("token", "all"):
        assert got["authorization"] == f"Bearer {SECRET_TOKEN}"
    if kind in ("auth", "url"):
        assert got["authorization"].startswith("Basic ")
    if kind in ("headers", "all"):
        assert got["x-api-key"] == SECRET_KEY


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_rest_call_redirected_to_another_origin_is_refused(
    servers: Tuple[RecordingServer, RecordingServer], kind: str
) -> None:
    server, elsewhere = servers
    server.routes["/prompt"] = redirect(elsewhere.url + "/prompt")
    with client(server, kind) as api, pytest.raises(ComfyConnectionError) as info:
        api.get_queue_remaining()
    message = str(info.value)
    assert f"http://127.0.0.1:{server.port}" in message
    assert f"http://{OTHER_HOST}:{elsewhere.port}" in message
    assert SECRET_TOKEN not in message and SECRET_KEY not in message and SECRET_PW not in message
    assert elsewhere.requests() == []  # not followed at all, with or without credentials
    assert_credentials_arrived(server, kind)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_upload_redirected_to_another_origin_is_refused(
    servers: Tuple[RecordingServer, RecordingServer], status: int
) -> None:
    server, elsewhere = servers
    server.routes["/upload/image"] = redirect(elsewhere.url + "/upload/image", status)
    with client(server, "all") as api, pytest.raises(ComfyConnectionError, match="another origin"):
        api.upload_image(PNG, filename="in.png")
    assert elsewhere.requests() == []


def test_same_origin_redirect_keeps_working_with_credentials(
    servers: Tuple[RecordingServer, RecordingServer],
) -> None:
    server, _ = servers
    server.routes["/prompt"] = redirect("/api/prompt", 307)
    server.routes["/api/prompt"] = json_answer(QUEUE)
    with client(server, "all") as api:
        assert api.get_queue_remaining() == 0
    first, second = server.requests()
    assert second.path == "/api/prompt"
    assert second.headers["authorization"] == f"Bearer {SECRET_TOKEN}"
    assert second.headers["x-api-key"] == SECRET_KEY


def test_scheme_change_is_another_origin(servers: Tuple[RecordingServer, RecordingServer]) -> None:
    """http → https on the same host and port is another origin too (no TLS server needed:
    the redirect is refused before anything is sent)."""
    server, _ = servers
    server.routes["/prompt"] = redirect(f"https://127.0.0.1:{server.port}/prompt")
    with client(server, "token") as api, pytest.raises(ComfyConnectionError) as info:
        api.get_queue_remaining()
    assert f"https://127.0.0.1:{server.port}" in str(info.value)
    assert len(server.requests()) == 1


def assert_anonymous(elsewhere: RecordingServer) -> None:
    got = elsewhere.requests()
    assert [r.path for r in got] == ["/signed/out.png"]
    headers = got[0].headers
    assert not got[0].carries_secret(), headers
    assert "cookie" not in headers
    assert headers["user-agent"].startswith("comfysync/")


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_download_follows_a_foreign_redirect_without_credentials(
    servers: Tuple[RecordingServer, RecordingServer], kind: str, tmp_path: Path
) -> None:
    server, elsewhere = servers
    server.routes["/view"] = redirect(elsewhere.url + "/signed/out.png")
    with client(server, kind) as api:
        path = api.download("out.png", tmp_path)
    assert path.read_bytes() == PNG
    assert_anonymous(elsewhere)
    assert_credentials_arrived(server, kind)


def test_get_image_follows_a_foreign_redirect_without_credentials(
    servers: Tuple[RecordingServer, RecordingServer],
) -> None:
    server, elsewhere = servers
    server.routes["/view"] = redirect(elsewhere.url + "/signed/out.png", 307)
    with client(server, "all") as api:
        assert api.get_image("out.png") == PNG
    assert_anonymous(elsewhere)


def test_credentials_stay_off_after_leaving_the_origin(
    servers: Tuple[RecordingServer, RecordingServer],
) -> None:
    """server → elsewhere → back to server: once the download left the origin, no hop of
    the chain carries credentials (elsewhere chose the last URL)."""
    server, elsewhere = servers
    server.routes["/view"] = redirect(elsewhere.url + "/bounce")
    elsewhere.routes["/bounce"] = redirect(server.url + "/final.png")
    server.routes["/final.png"] = Answer(200, {}, PNG)
    with client(server, "all") as api:
        assert api.get_image("out.png") == PNG
    final = server.requests()[-1]
    assert final.path == "/final.png" and not final.carries_secret()
    assert not elsewhere.requests()[0].carries_secret()


def test_transport_fetches_a_foreign_url_anonymously_only_when_asked(
    servers: Tuple[RecordingServer, RecordingServer],
) -> None:
    """What an output on another origin (a signed URL) needs: ``allow_foreign`` fetches an
    absolute URL there without credentials; without it the URL is refused."""
    server, elsewhere = servers
    transport = HttpTransport(server.url, token=SECRET_TOKEN, headers={"X-Api-Key": SECRET_KEY})
    try:
        url = elsewhere.url + "/signed/out.png"
        with pytest.raises(ComfyConnectionError, match="another origin"):
            transport.request("GET", url)
        assert elsewhere.requests() == []
        assert transport.request("GET", url, allow_foreign=True).content == PNG
        assert_anonymous(elsewhere)
        server.routes["/x"] = json_answer("{}")
        transport.request("GET", server.url + "/x")  # same origin, absolute: credentials go
        assert server.requests()[-1].headers["x-api-key"] == SECRET_KEY
    finally:
        transport.close()


# -- through FakeComfyUI: results, the pool, the CLI ------------------------------------------


@pytest.fixture
def fronted(fake_server: FakeComfyUI) -> Iterator[Tuple[RecordingServer, RecordingServer]]:
    """A recording reverse proxy on 127.0.0.1 in front of FakeComfyUI whose ``/view``
    redirects to a storage host on 127.0.0.2."""
    elsewhere = RecordingServer(OTHER_HOST, {"/signed/out.png": Answer(200, {}, PNG)})
    front = RecordingServer("127.0.0.1", upstream=fake_server.url)
    front.routes["/view"] = redirect(elsewhere.url + "/signed/out.png")
    try:
        yield front, elsewhere
    finally:
        front.close()
        elsewhere.close()


def text_workflow() -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                      "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "sec"}},
    }


def test_result_file_saved_through_a_foreign_redirect_is_anonymous(
    fronted: Tuple[RecordingServer, RecordingServer], tmp_path: Path
) -> None:
    front, elsewhere = fronted
    with ComfyApi(front.url, tracker="http", token=SECRET_TOKEN,
                  headers={"X-Api-Key": SECRET_KEY}) as api:
        result = api.run_workflow(text_workflow(), timeout=30)
        saved = result.images[0].save(tmp_path)
    assert saved.read_bytes() == PNG
    assert_anonymous(elsewhere)
    assert all(r.headers.get("x-api-key") == SECRET_KEY for r in front.requests())


def test_pool_download_is_anonymous_elsewhere(
    fronted: Tuple[RecordingServer, RecordingServer], tmp_path: Path
) -> None:
    front, elsewhere = fronted
    with ComfyPool([front.url], tracker="http", headers={"X-Api-Key": SECRET_KEY}) as pool:
        result = pool.run_workflow(text_workflow(), timeout=30)
        saved = result.images[0].save(tmp_path)
    assert saved.read_bytes() == PNG
    assert_anonymous(elsewhere)


def test_pool_submit_redirected_elsewhere_never_reaches_it(
    fronted: Tuple[RecordingServer, RecordingServer],
) -> None:
    """The pool's clients refuse a foreign redirect like any client: the job fails, and the
    other origin never sees the prompt or the key."""
    front, elsewhere = fronted
    front.routes["/prompt"] = lambda got: (
        redirect(elsewhere.url + "/prompt", 307) if got.method == "POST"
        else json_answer(QUEUE))
    with ComfyPool([front.url], tracker="http", headers={"X-Api-Key": SECRET_KEY}) as pool:
        with pytest.raises(ComfyError):
            pool.run_workflow(text_workflow(), timeout=10)
    assert elsewhere.requests() == []
    assert "POST" in {r.method for r in front.requests() if r.path == "/prompt"}


def test_cli_download_is_anonymous_elsewhere(
    servers: Tuple[RecordingServer, RecordingServer], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, elsewhere = servers
    server.routes["/view"] = redirect(elsewhere.url + "/signed/out.png")
    code = cli_main(["download", "out.png", "--server", server.url, "--token", SECRET_TOKEN,
                     "--out", str(tmp_path / "x.png"), "--json"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "x.png").read_bytes() == PNG
    assert_anonymous(elsewhere)
    assert server.requests()[0].headers["authorization"] == f"Bearer {SECRET_TOKEN}"


def test_cli_rest_command_redirected_elsewhere_is_refused(
    servers: Tuple[RecordingServer, RecordingServer], capsys: pytest.CaptureFixture[str],
) -> None:
    server, elsewhere = servers
    server.routes["/queue"] = redirect(elsewhere.url + "/queue")
    code = cli_main(["queue", "--server", server.url, "--token", SECRET_TOKEN])
    err = capsys.readouterr().err
    assert code != 0
    assert "another origin" in err and f"{OTHER_HOST}:{elsewhere.port}" in err
    assert SECRET_TOKEN not in err
    assert elsewhere.requests() == []

