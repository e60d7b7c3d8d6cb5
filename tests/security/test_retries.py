"""HTTP retries by urllib3's ``Retry``: idempotent requests only, against a real loopback
server that fails a given number of times."""

from __future__ import annotations

import socket
from typing import Any, Iterator, List

import pytest
from _origin_servers import RecordingServer, failing, json_answer
from urllib3.util.retry import Retry

from comfysync import ComfyApi
from comfysync._http.settings import DEFAULT_RETRIES, make_retry
from comfysync.errors import ComfyConnectionError, ComfyHTTPError

QUEUE = json_answer('{"exec_info": {"queue_remaining": 3}}')


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer("127.0.0.1") as s:
        yield s


def api_for(server: RecordingServer, **kwargs: Any) -> ComfyApi:
    return ComfyApi(server.url, tracker="http", **kwargs)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_on_gateway_errors_by_default(server: RecordingServer, status: int) -> None:
    server.routes["/prompt"] = failing(DEFAULT_RETRIES, status, then=QUEUE)
    api = api_for(server)
    try:
        assert api.get_queue_remaining() == 3
    finally:
        api.close()
    assert server.paths() == ["/prompt"] * (DEFAULT_RETRIES + 1)


def test_gives_up_after_the_retries_with_the_last_answer(server: RecordingServer) -> None:
    server.routes["/prompt"] = failing(10, 503)
    api = api_for(server, retries=1)
    try:
        with pytest.raises(ComfyHTTPError) as info:
            api.get_queue_remaining()
    finally:
        api.close()
    assert info.value.status == 503
    assert len(server.paths()) == 2


def test_zero_disables_retries(server: RecordingServer) -> None:
    server.routes["/prompt"] = failing(1, 503, then=QUEUE)
    api = api_for(server, retries=0)
    try:
        with pytest.raises(ComfyHTTPError):
            api.get_queue_remaining()
        assert api.get_queue_remaining() == 3  # the server recovered; no retry was made
    finally:
        api.close()
    assert len(server.paths()) == 2


def test_post_prompt_is_never_retried_even_by_a_retry_that_allows_post(
    server: RecordingServer,
) -> None:
    """A re-sent POST /prompt could run a workflow twice: urllib3 never re-sends it, whatever
    ``Retry`` the user gave (ambiguous submits are resolved by the prompt id instead)."""
    server.routes["/prompt"] = failing(5, 503)
    eager = Retry(total=5, status=5, allowed_methods=None, status_forcelist=[503],
                  raise_on_status=False)
    for retries in (3, eager):
        api = api_for(server, retries=retries)
        try:
            with pytest.raises(ComfyHTTPError):
                api.queue_prompt({"1": {"class_type": "X", "inputs": {}}})
        finally:
            api.close()
    assert [r.method for r in server.requests()] == ["POST", "POST"]


def test_retry_after_is_obeyed(server: RecordingServer) -> None:
    server.routes["/prompt"] = failing(1, 503, then=QUEUE, headers={"Retry-After": "1"})
    api = api_for(server)
    try:
        assert api.get_queue_remaining() == 3
    finally:
        api.close()
    first, second = server.requests()
    assert second.at - first.at >= 0.9  # the server asked for one second


class CountingRetry(Retry):
    """A user's ``Retry`` that records each failed attempt (urllib3 calls ``increment``)."""

    attempts: List[str] = []

    def increment(self, *args: Any, **kwargs: Any) -> Retry:  # type: ignore[override]
        error = kwargs.get("error")
        CountingRetry.attempts.append(type(error).__name__ if error else "status")
        return super().increment(*args, **kwargs)


def test_connect_errors_are_retried_with_the_given_retry() -> None:
    with socket.socket() as sock:  # a port nothing listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    CountingRetry.attempts = []
    api = ComfyApi(f"127.0.0.1:{port}", tracker="http",
                   retries=CountingRetry(total=2, connect=2, backoff_factor=0))
    try:
        with pytest.raises(ComfyConnectionError, match="connection refused"):
            api.get_queue_remaining()
    finally:
        api.close()
    assert CountingRetry.attempts == ["NewConnectionError"] * 3


def test_default_policy() -> None:
    retry = make_retry(None)
    assert retry.total == DEFAULT_RETRIES == retry.connect == retry.status
    assert retry.read is False  # a read timeout is not multiplied
    assert set(retry.status_forcelist or ()) == {502, 503, 504}
    assert "POST" not in (retry.allowed_methods or ())
    assert retry.respect_retry_after_header
    with pytest.raises(ValueError):
        make_retry(-1)
    with pytest.raises(TypeError):
        make_retry("3")  # type: ignore[arg-type]


def test_a_long_retry_after_is_capped() -> None:
    from urllib3.response import HTTPResponse

    from comfysync._http.settings import RETRY_AFTER_CAP

    answer = HTTPResponse(body=b"", headers={"Retry-After": "3600"}, status=503)
    assert make_retry(2).get_retry_after(answer) == RETRY_AFTER_CAP
