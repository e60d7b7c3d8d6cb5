"""HttpTransport (with _urls and _http_errors): URL parsing, credentials, headers, TLS options
and error mapping."""

from __future__ import annotations

import base64
import http.server
import logging
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Dict, Generator, Iterator, Tuple, cast

import pytest
import requests
import responses

import comfysync._http.transport as transport_module
from comfysync._http.errors import decode_json
from comfysync._http.transport import HttpTransport, iter_response
from comfysync._http.urls import (
    ParsedURL,
    clean_params,
    parse_base_url,
    redact_userinfo,
    strip_userinfo,
)
from comfysync.errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
)

SECRET_PW = "s3cr3t-pa55"
SECRET_TOKEN = "tok-abcdef-123456"


def _basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


# -- URL parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, base, port",
    [
        ("localhost", "http://localhost:8188", 8188),
        ("127.0.0.1", "http://127.0.0.1:8188", 8188),
        ("127.0.0.1:8190", "http://127.0.0.1:8190", 8190),
        ("gpu1:8188/comfy/", "http://gpu1:8188/comfy", 8188),
        ("http://127.0.0.1:8188", "http://127.0.0.1:8188", 8188),
        ("http://127.0.0.1:8188/", "http://127.0.0.1:8188", 8188),
        ("https://comfy.example.com", "https://comfy.example.com", 443),
        ("https://comfy.example.com/", "https://comfy.example.com", 443),
        ("http://comfy.example.com/comfy", "http://comfy.example.com/comfy", 80),
        ("https://comfy.example.com:8443/a/b/", "https://comfy.example.com:8443/a/b", 8443),
        ("HTTP://Example.COM:81", "http://example.com:81", 81),
        ("[::1]:8189", "http://[::1]:8189", 8189),
        ("::1", "http://[::1]:8188", 8188),
        ("http://[fe80::1]/x", "http://[fe80::1]/x", 80),
        ("ws://host:9000", "http://host:9000", 9000),
        ("wss://host", "https://host", 443),
        ("  127.0.0.1:8188  ", "http://127.0.0.1:8188", 8188),
    ],
)
def test_parse_base_url(given: str, base: str, port: int) -> None:
    parsed = parse_base_url(given)
    assert parsed.base_url == base
    assert parsed.port == port


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "ftp://host", "http://", "host:notaport", "http://host:8188/?x=1",
     "http://host/#frag", "http://host:99999"],
)
def test_parse_base_url_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_base_url(bad)


def test_parse_base_url_rejects_non_string() -> None:
    with pytest.raises(TypeError):
        parse_base_url(8188)  # type: ignore[arg-type]


def test_invalid_url_message_hides_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_base_url(f"http://bob:{SECRET_PW}@host:notaport")
    assert SECRET_PW not in str(info.value)
    assert "***@" in str(info.value)


def test_parsed_url_keeps_credentials_out_of_urls_and_repr() -> None:
    parsed = parse_base_url(f"https://bob:{SECRET_PW}@[fe80::1]:8443/comfy/")
    assert (parsed.username, parsed.password) == ("bob", SECRET_PW)
    assert parsed.netloc == "[fe80::1]:8443"
    built = [parsed.base_url, parsed.route("queue"), parsed.url("/view", {"a": False}),
             parsed.ws_url("c/1"), repr(parsed)]
    assert built[1:4] == [
        "https://[fe80::1]:8443/comfy/queue",
        "https://[fe80::1]:8443/comfy/view?a=false",
        "wss://[fe80::1]:8443/comfy/ws?clientId=c%2F1",
    ]
    assert all(SECRET_PW not in text and "bob" not in text for text in built)
    assert parsed == parse_base_url(f"https://bob:{SECRET_PW}@[fe80::1]:8443/comfy")
    with pytest.raises(AttributeError):
        parsed.host = "elsewhere"  # type: ignore[misc]


def test_default_ports_appear_only_when_needed() -> None:
    assert parse_base_url("https://h").netloc == "h"
    assert parse_base_url("h").netloc == "h:8188"
    assert ParsedURL("http", "h", 80, False, "").ws_url("x") == "ws://h/ws?clientId=x"


def test_redaction_helpers() -> None:
    assert redact_userinfo(f"bob:{SECRET_PW}@h:1/x") == "***@h:1/x"
    assert redact_userinfo(f"http://b:{SECRET_PW}@h/p@q") == "http://***@h/p@q"
    assert redact_userinfo("http://h:1/a@b") == "http://h:1/a@b"
    assert strip_userinfo(f"http://b:{SECRET_PW}@h:1/v?x=1") == "http://h:1/v?x=1"
    assert strip_userinfo("http://h:1/v") == "http://h:1/v"


def test_clean_params_drops_none_and_spells_booleans() -> None:
    assert clean_params(None) == {}
    assert clean_params({"a": None, "b": True, "c": False, "d": 0, "e": ["x", "y"]}) == {
        "b": "true", "c": "false", "d": 0, "e": ["x", "y"]}


def test_transport_module_keeps_its_names() -> None:
    # Other layers import these from _transport; the split moved their definitions.
    assert transport_module.parse_base_url is parse_base_url
    assert transport_module.decode_json is decode_json
    assert transport_module.ParsedURL is ParsedURL
    assert transport_module.DEFAULT_PORT == 8188
    assert set(transport_module.__all__) <= set(dir(transport_module))


def test_url_and_ws_url_keep_prefix() -> None:
    t = HttpTransport("https://proxy.example.com/comfy/")
    assert t.url("/prompt") == "https://proxy.example.com/comfy/prompt"
    assert t.url("history", {"max_items": 2, "offset": None}) == (
        "https://proxy.example.com/comfy/history?max_items=2"
    )
    assert t.url("/view", {"flag": True}) == "https://proxy.example.com/comfy/view?flag=true"
    assert t.ws_url("abc def") == "wss://proxy.example.com/comfy/ws?clientId=abc%20def"
    assert t.prefix == "/comfy" and t.scheme == "https" and t.host == "proxy.example.com"


def test_ws_url_plain_and_ipv6() -> None:
    assert HttpTransport("127.0.0.1").ws_url("c1") == "ws://127.0.0.1:8188/ws?clientId=c1"
    assert HttpTransport("[::1]:9").ws_url("c") == "ws://[::1]:9/ws?clientId=c"


# -- credentials and headers -------------------------------------------------------------------


@responses.activate
def test_basic_auth_and_extra_headers_sent() -> None:
    responses.get("http://h:8188/p/queue", json={"queue_running": [], "queue_pending": []})
    t = HttpTransport("h/p", auth=("bob", SECRET_PW), headers={"X-Team": "blue"})
    t.request("GET", "/queue")
    sent = responses.calls[0].request.headers
    assert sent["Authorization"] == _basic("bob", SECRET_PW)
    assert sent["X-Team"] == "blue"


@responses.activate
def test_bearer_token_sent() -> None:
    responses.get("http://h:8188/prompt", json={"exec_info": {"queue_remaining": 0}})
    t = HttpTransport("h", token=SECRET_TOKEN)
    assert t.request_json("GET", "/prompt") == {"exec_info": {"queue_remaining": 0}}
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {SECRET_TOKEN}"


@responses.activate
def test_credentials_in_url_become_basic_auth_and_are_stripped() -> None:
    responses.get("https://comfy.example.com/x/system_stats", json={})
    t = HttpTransport(f"https://bob:{SECRET_PW}@comfy.example.com/x")
    assert t.base_url == "https://comfy.example.com/x"
    t.request("GET", "/system_stats")
    request = responses.calls[0].request
    assert request.url == "https://comfy.example.com/x/system_stats"
    assert request.headers["Authorization"] == _basic("bob", SECRET_PW)
    assert SECRET_PW not in repr(t) and "bob" not in repr(t)
    assert "auth=basic" in repr(t)


def test_url_encoded_credentials_are_decoded() -> None:
    t = HttpTransport("http://b%40x:p%3Aw@h:1")
    assert t.ws_headers() == ["Authorization: " + _basic("b@x", "p:w")]


@pytest.mark.parametrize(
    "kwargs, what",
    [({"token": "s3cr\u20acet"}, "token"), ({"token": "a\r\nX-Evil: 1"}, "token"),
     ({"headers": {"X-Key": "k\u2026"}}, "headers['X-Key']")],
)
def test_header_values_http_cannot_carry_are_refused_at_construction(
    kwargs: Dict[str, Any], what: str
) -> None:
    with pytest.raises(ValueError) as info:
        HttpTransport("127.0.0.1:8188", **kwargs)
    message = str(info.value)
    assert message.startswith(what)
    assert "s3cr" not in message and "k\u2026" not in message  # never echoes the value


def test_auth_and_token_together_refused() -> None:
    with pytest.raises(ValueError):
        HttpTransport("h", auth=("a", "b"), token="t")


def test_bad_auth_and_timeout_arguments() -> None:
    with pytest.raises(TypeError):
        HttpTransport("h", auth="user:pw")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HttpTransport("h", token="")
    with pytest.raises(ValueError):
        HttpTransport("h", timeout=0)
    with pytest.raises(ValueError):
        HttpTransport("h", timeout=(1.0, -1.0))
    with pytest.raises(TypeError):
        HttpTransport("h", timeout="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HttpTransport("h", verify=3)  # type: ignore[arg-type]


def test_ws_headers_carry_auth_and_extra_headers() -> None:
    t = HttpTransport("h", token=SECRET_TOKEN, headers={"X-A": "1", "Authorization": "old"})
    assert t.ws_headers() == ["X-A: 1", f"Authorization: Bearer {SECRET_TOKEN}"]
    assert HttpTransport("h").ws_headers() == []
    assert HttpTransport("h", headers={"Authorization": "Custom x"}).ws_headers() == [
        "Authorization: Custom x"
    ]


def test_ws_sslopt_follows_verify(tmp_path: Path) -> None:
    assert HttpTransport("https://h").ws_sslopt() == {}
    off = HttpTransport("https://h", verify=False).ws_sslopt()
    assert off["cert_reqs"] == ssl.CERT_NONE and off["check_hostname"] is False
    pem = tmp_path / "ca.pem"
    pem.write_text("-", encoding="utf-8")
    ca = HttpTransport("https://h", verify=str(pem)).ws_sslopt()
    assert ca == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(pem)}
    ca_dir = HttpTransport("https://h", verify=str(tmp_path)).ws_sslopt()
    assert ca_dir["ca_cert_path"] == str(tmp_path)


@responses.activate
def test_verify_and_timeout_passed_to_requests() -> None:
    responses.get("https://h/a", body="")
    t = HttpTransport("https://h", verify=False, timeout=(2.0, 7.0))
    t.request("GET", "/a")
    assert responses.calls[0].request.req_kwargs["verify"] is False
    assert responses.calls[0].request.req_kwargs["timeout"] == (2.0, 7.0)
    t.request("GET", "/a", timeout=1.5)
    assert responses.calls[1].request.req_kwargs["timeout"] == 1.5


def test_repr_never_shows_secrets() -> None:
    for t in (
        HttpTransport("h", auth=("alice", SECRET_PW)),
        HttpTransport("h", token=SECRET_TOKEN),
        HttpTransport(f"http://alice:{SECRET_PW}@h:1/p", headers={"X-Key": SECRET_TOKEN}),
    ):
        text = repr(t)
        assert SECRET_PW not in text and SECRET_TOKEN not in text and "alice" not in text
        assert t.base_url in text


# -- error mapping -----------------------------------------------------------------------------


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 but not listening: connecting is refused, deterministically."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_connection_refused_names_url_without_secrets(
    refused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="comfysync")
    t = HttpTransport(f"http://bob:{SECRET_PW}@127.0.0.1:{refused_port}/pre", timeout=5)
    with pytest.raises(ComfyConnectionError) as info:
        t.request("GET", "/queue")
    err = info.value
    assert err.url == f"http://127.0.0.1:{refused_port}/pre/queue"
    assert f"127.0.0.1:{refused_port}" in str(err)
    assert "refused" in str(err) and "--listen" in str(err)
    assert SECRET_PW not in str(err) and SECRET_PW not in repr(err)
    assert all(SECRET_PW not in r.getMessage() for r in caplog.records)
    assert isinstance(err, ComfyError)


@pytest.fixture
def silent_server() -> Iterator[Tuple[str, socket.socket]]:
    """A listening socket that accepts connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", sock
    finally:
        sock.close()


def test_real_read_timeout(silent_server: Tuple[str, socket.socket]) -> None:
    address, _ = silent_server
    t = HttpTransport(address, timeout=0.3)
    with pytest.raises(ComfyTimeoutError) as info:
        t.request("GET", "/prompt")
    assert info.value.url == f"http://{address}/prompt"
    assert "timed out waiting for an answer" in str(info.value)
    t.close()


@responses.activate
@pytest.mark.parametrize(
    "exc, words",
    [
        (requests.exceptions.ReadTimeout("read timed out"), "waiting for an answer"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "connecting to"),
    ],
)
def test_timeouts_mapped(exc: Exception, words: str) -> None:
    responses.get("http://h:8188/queue", body=exc)
    with pytest.raises(ComfyTimeoutError) as info:
        HttpTransport("h", timeout=4).request("GET", "/queue")
    assert words in str(info.value) and "timeout=4s" in str(info.value)
    assert info.value.url == "http://h:8188/queue"
    assert isinstance(info.value.__cause__, requests.exceptions.Timeout)


@responses.activate
@pytest.mark.parametrize(
    "exc, words",
    [
        (requests.exceptions.ConnectionError(
            "HTTPConnectionPool(host='nohost', port=8188): Max retries exceeded "
            "(Caused by NameResolutionError(\"Failed to resolve 'nohost'\"))"),
         "could not be resolved"),
        (requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), "TLS handshake failed"),
        (requests.exceptions.ChunkedEncodingError("broken"), "broke while reading"),
        (requests.exceptions.TooManyRedirects("loop"), "too many redirects"),
        (requests.exceptions.ConnectionError("something odd"), "connection failed"),
    ],
)
def test_connection_failures_mapped(exc: Exception, words: str) -> None:
    responses.get("http://nohost:8188/queue", body=exc)
    with pytest.raises(ComfyConnectionError) as info:
        HttpTransport("nohost").request("GET", "/queue")
    assert words in str(info.value)
    assert "http://nohost:8188" in str(info.value)


@responses.activate
def test_plain_text_500_becomes_http_error() -> None:
    body = "500 Internal Server Error\n\nServer got itself in trouble"
    responses.post("http://h:8188/prompt", body=body, status=500, content_type="text/plain")
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("h").request("POST", "/prompt", json={})
    err = info.value
    assert err.status == 500 and err.body == body and err.method == "POST"
    assert err.url == "http://h:8188/prompt"
    assert "HTTP 500" in str(err) and "Server got itself in trouble" in str(err)


@responses.activate
def test_html_500_from_proxy_becomes_http_error() -> None:
    html = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n"
    responses.get("https://p.example/c/queue", body=html, status=502, content_type="text/html")
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("https://p.example/c").request("GET", "/queue")
    assert info.value.status == 502 and info.value.body == html
    assert "502 Bad Gateway" in str(info.value) and "proxy" in str(info.value)


@responses.activate
def test_json_error_body_is_decoded() -> None:
    responses.post("http://h:8188/users", json={"error": "Duplicate username."}, status=400)
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("h").request("POST", "/users", json={"username": "a"})
    assert info.value.body == {"error": "Duplicate username."}
    assert "Duplicate username." in str(info.value)


@responses.activate
def test_malformed_json_error_body_stays_text() -> None:
    responses.get("http://h:8188/x", body="{not json", status=500,
                  content_type="application/json")
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("h").request("GET", "/x")
    assert info.value.body == "{not json"


@responses.activate
def test_empty_404_and_auth_hints() -> None:
    responses.get("http://h:8188/view", status=404, body="")
    responses.get("http://h:8188/a", status=401, body="401: Unauthorized")
    responses.get("http://h:8188/b", status=403, body="")
    responses.get("http://h:8188/c", status=413, body="Maximum request body size 1 exceeded.")
    t = HttpTransport("h")
    with pytest.raises(ComfyHTTPError) as info:
        t.request("GET", "/view", params={"filename": "nope.png", "type": "output"})
    assert info.value.body == "" and info.value.status == 404
    assert info.value.url == "http://h:8188/view?filename=nope.png&type=output"
    hints = {"/a": "credentials", "/b": "origin check", "/c": "--max-upload-size"}
    for path, word in hints.items():
        with pytest.raises(ComfyHTTPError) as info:
            t.request("GET", path)
        assert word in str(info.value)


@responses.activate
def test_streamed_error_body_is_read_and_bounded() -> None:
    responses.get("http://h:8188/view", status=500, body="x" * 200_000)
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("h").request("GET", "/view", stream=True)
    assert isinstance(info.value.body, str) and len(info.value.body) == 64 * 1024


@responses.activate
def test_200_with_html_login_page_raises_http_error_not_json_error() -> None:
    page = "<!DOCTYPE html>\n<html><body>Please log in</body></html>"
    responses.get("https://p.example/queue", body=page, status=200, content_type="text/html")
    t = HttpTransport("https://p.example")
    with pytest.raises(ComfyHTTPError) as info:
        t.request_json("GET", "/queue")
    err = info.value
    assert err.status == 200 and err.body == page
    assert "not JSON" in str(err) and "login page" in str(err)
    assert not isinstance(err, ValueError)


@responses.activate
def test_decode_json_of_empty_body_is_none() -> None:
    responses.post("http://h:8188/free", body="")
    t = HttpTransport("h")
    assert t.request_json("POST", "/free", json={}) is None
    response = t.request("POST", "/free", json={})
    assert decode_json(response) is None


@responses.activate
def test_errors_and_logs_never_contain_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses.get("http://h:8188/x", status=500, body="boom")
    responses.get("http://h:8188/y", body=requests.exceptions.ReadTimeout("t"))
    for kwargs in ({"auth": ("u", SECRET_PW)}, {"token": SECRET_TOKEN}):
        t = HttpTransport("h", **kwargs)  # type: ignore[arg-type]
        for path in ("/x", "/y"):
            with pytest.raises(ComfyError) as info:
                t.request("GET", path)
            assert SECRET_PW not in str(info.value) and SECRET_TOKEN not in str(info.value)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET_PW not in text and SECRET_TOKEN not in text
    assert "http://h:8188/x" in text


@responses.activate
def test_close_is_idempotent_and_blocks_requests() -> None:
    responses.get("http://h:8188/prompt", json={})
    t = HttpTransport("h")
    t.request("GET", "/prompt")
    t.close()
    t.close()
    assert t.closed and "closed" in repr(t)
    with pytest.raises(ComfyConnectionError, match="closed"):
        t.request("GET", "/prompt")
    assert len(responses.calls) == 1


class _BreakingBody:
    """Stands in for a streamed response whose connection fails after the first chunk."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.url = f"http://u:{SECRET_PW}@h:1/view?filename=a.png"
        self.closed = False

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        yield b"x" * chunk_size
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "exc, kind, words",
    [
        (requests.exceptions.ReadTimeout("slow"), ComfyTimeoutError, "timed out while reading"),
        (requests.exceptions.ChunkedEncodingError("cut"), ComfyConnectionError,
         "connection broke while reading the answer"),
    ],
)
def test_iter_response_maps_mid_body_failures(
    exc: Exception, kind: type, words: str
) -> None:
    body = _BreakingBody(exc)
    chunks = iter_response(body, chunk_size=4)  # type: ignore[arg-type]
    assert next(chunks) == b"xxxx"
    with pytest.raises(kind) as info:
        next(chunks)
    assert words in str(info.value) and SECRET_PW not in str(info.value)
    assert str(info.value).startswith("GET http://h:1/view?filename=a.png")
    assert body.closed


def test_iter_response_closes_when_the_caller_stops_early() -> None:
    body = _BreakingBody(RuntimeError("never reached"))
    chunks = cast(Generator[bytes, None, None], iter_response(
        body, chunk_size=2, method="POST", url="http://x/y"))  # type: ignore[arg-type]
    assert next(chunks) == b"xx"
    chunks.close()
    assert body.closed


# -- TLS options, hints, User-Agent, WebSocket URLs given as the base -----------------------------


def test_missing_ca_bundle_refused_at_construction(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ValueError, match=r"verify=.*nope\.pem.*no such CA bundle"):
        HttpTransport("https://h", verify=missing)
    with pytest.raises(ValueError, match="verify="):
        HttpTransport("https://h", verify=tmp_path / "nope.pem")  # PathLike too
    HttpTransport("https://h", verify=str(tmp_path))  # a directory of CA certificates is fine


def test_ca_bundle_oserror_from_requests_is_a_connection_error(
    tmp_path: Path, refused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-", encoding="utf-8")
    t = HttpTransport(f"https://127.0.0.1:{refused_port}", verify=str(pem))
    pem.unlink()  # gone after construction
    with pytest.raises(ComfyConnectionError, match="CA bundle") as info:
        t.request("GET", "/queue")
    assert info.value.url == f"https://127.0.0.1:{refused_port}/queue"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "env.pem"))  # verify=True + env
    with pytest.raises(ComfyConnectionError, match="REQUESTS_CA_BUNDLE"):
        HttpTransport(f"https://127.0.0.1:{refused_port}").request("GET", "/queue")


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A plain-HTTP server on 127.0.0.1 (answers every TLS ClientHello with an HTTP 400)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_https_against_plain_http_says_so(plain_http_port: int) -> None:
    t = HttpTransport(f"https://127.0.0.1:{plain_http_port}", verify=False, timeout=5)
    with pytest.raises(ComfyConnectionError) as info:
        t.request("GET", "/queue")
    assert "is the server really speaking HTTPS? (WRONG_VERSION_NUMBER)" in str(info.value)
    assert "http://" in str(info.value)


@responses.activate
def test_certificate_failure_keeps_the_certificate_hint() -> None:
    responses.get("https://h/queue", body=requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    with pytest.raises(ComfyConnectionError) as info:
        HttpTransport("https://h").request("GET", "/queue")
    assert "verify='/path/to/ca.pem'" in str(info.value) and "HTTPS?" not in str(info.value)


@responses.activate
def test_404_with_a_path_prefix_hints_at_the_prefix() -> None:
    responses.get("http://h:8188/comfy/queue", status=404, body="404: Not Found")
    responses.get("http://h:8188/queue", status=404, body="404: Not Found")
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("h/comfy").request("GET", "/queue")
    assert "check the path prefix '/comfy' in the server URL" in str(info.value)
    with pytest.raises(ComfyHTTPError) as info:
        HttpTransport("h").request("GET", "/queue")
    assert "prefix" not in str(info.value)


@responses.activate
def test_user_agent_names_comfysync_and_can_be_overridden() -> None:
    from comfysync import __version__

    responses.get("http://h:8188/queue", json={})
    HttpTransport("h").request("GET", "/queue")
    HttpTransport("h", headers={"user-agent": "my-app/2"}).request("GET", "/queue")
    first, second = (c.request.headers["User-Agent"] for c in responses.calls)
    assert first == f"comfysync/{__version__} python-requests/{requests.__version__}"
    assert second == "my-app/2"


@pytest.mark.parametrize("given, base", [
    ("ws://127.0.0.1:8188/ws", "http://127.0.0.1:8188"),
    ("wss://comfy.example.com/comfy/ws/", "https://comfy.example.com/comfy"),
    ("h:8188/ws", "http://h:8188"),
])
def test_websocket_url_as_base_is_stripped_with_a_warning(
    given: str, base: str, caplog: pytest.LogCaptureFixture
) -> None:
    parsed = parse_base_url(given)
    assert parsed.base_url == base and parsed.ws_path_stripped
    assert parsed == parse_base_url(base)  # the same server, for the pool too
    caplog.set_level(logging.WARNING, logger="comfysync")
    t = HttpTransport(given)
    assert t.base_url == base and t.ws_url("c") == parsed.ws_url("c")
    assert t.ws_url("c").endswith(("/comfy/ws?clientId=c", ":8188/ws?clientId=c"))
    (record,) = [r for r in caplog.records if r.name == "comfysync.transport"]
    assert record.levelno == logging.WARNING and "/ws" in record.getMessage()
    assert base in record.getMessage()
    assert not parse_base_url("http://h/wsx").ws_path_stripped
