"""HTTP transport: base-URL parsing, one ``requests.Session``, typed errors, redaction.

Everything that talks HTTP goes through :class:`HttpTransport`, so there is exactly one place
that knows about credentials, path prefixes, TLS options and how a ``requests`` failure turns
into a :mod:`comfysync.errors` exception. The WebSocket listener asks it for the ``ws://`` URL,
the handshake headers and the TLS options, so REST and WebSocket always agree.

Credentials never leave this module in readable form: :attr:`HttpTransport.base_url` is the
address without user info, ``repr`` names only the *kind* of authentication, and error messages
use the redacted URL.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote, unquote, urlencode, urlsplit

import requests
import requests.adapters
import requests.auth

from .errors import ComfyConnectionError, ComfyHTTPError, ComfyTimeoutError

__all__ = [
    "DEFAULT_PORT",
    "HttpTransport",
    "ParsedURL",
    "TimeoutArg",
    "VerifyArg",
    "decode_json",
    "iter_response",
    "parse_base_url",
]

log = logging.getLogger("comfysync.transport")

DEFAULT_PORT = 8188
"""ComfyUI's default port, used when a bare ``host`` (no scheme) is given."""

TimeoutArg = Union[None, float, Tuple[float, float]]
"""Seconds for a REST call: one number (connect and read) or ``(connect, read)``."""

VerifyArg = Union[bool, str, "os.PathLike[str]"]
"""TLS verification: ``True`` (system/certifi CAs), ``False`` (no check) or a CA bundle path."""

_SCHEME_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME_ALIASES = {"ws": "http", "wss": "https"}
_ERROR_BODY_LIMIT = 64 * 1024
_POOL_MAXSIZE = 32


class ParsedURL:
    """The pieces of a ComfyUI base URL, credentials separated out.

    ``host`` is the bare host name or IP (IPv6 without brackets), ``port`` the effective port,
    ``explicit_port`` whether the port must appear in URLs (False only for ``http(s)://host``
    written without a port, where the scheme default applies), ``prefix`` the path prefix
    without trailing slash (``""`` or e.g. ``"/comfy"``).
    """

    __slots__ = ("scheme", "host", "port", "explicit_port", "prefix", "username", "password")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        explicit_port: bool,
        prefix: str,
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.explicit_port = explicit_port
        self.prefix = prefix
        self.username = username
        self.password = password

    @property
    def netloc(self) -> str:
        """``host[:port]`` with IPv6 literals in brackets, never with credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.prefix}"

    def __repr__(self) -> str:
        return f"ParsedURL({self.base_url!r})"


def parse_base_url(url: str) -> ParsedURL:
    """Parse ``host``, ``host:port``, ``[v6]:port`` or ``http(s)://[user:pw@]host[:port][/prefix]``.

    A bare host (no scheme) means ``http://host:8188``. An explicit scheme without a port keeps
    that scheme's default port (80/443), because a reverse proxy at ``https://comfy.example.com/``
    listens there, not on 8188. ``ws://``/``wss://`` are accepted as aliases of ``http``/``https``.
    Raises :class:`ValueError` for anything else (the message never repeats a password).
    """
    if not isinstance(url, str):
        raise TypeError(f"server URL must be a string, not {type(url).__name__}")
    text = url.strip()
    if not text:
        raise ValueError("server URL is empty; expected e.g. '127.0.0.1:8188'")
    has_scheme = "://" in text
    if not has_scheme:
        bare = text.split("/", 1)[0]
        # An unbracketed IPv6 literal such as "::1" cannot carry a port; bracket it.
        if bare.count(":") > 1 and not bare.startswith("["):
            text = f"[{bare}]" + text[len(bare):]
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid server URL {_redact_input(url)!r}: {exc}") from None
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in _SCHEME_DEFAULT_PORTS:
        raise ValueError(
            f"unsupported URL scheme {parts.scheme!r} in {_redact_input(url)!r}; "
            "use http:// or https://"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"server URL {_redact_input(url)!r} has no host")
    if parts.query or parts.fragment:
        raise ValueError(
            f"server URL {_redact_input(url)!r} must not contain a query or fragment"
        )
    explicit_port = port is not None
    if port is None:
        port = DEFAULT_PORT if not has_scheme else _SCHEME_DEFAULT_PORTS[scheme]
        explicit_port = not has_scheme
    prefix = parts.path.rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ParsedURL(scheme, host, port, explicit_port, prefix, username, password)


def _redact_input(url: str) -> str:
    """The user's URL string with any ``user:password@`` part masked, for error messages."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    slash = url.find("/", start)
    netloc_end = slash if slash >= 0 else len(url)
    at = url.rfind("@", start, netloc_end)
    if at < 0:
        return url
    return url[:start] + "***@" + url[at + 1:]


def _basic_header(username: str, password: str) -> str:
    """``Basic <base64>`` the way browsers do it (latin-1 when possible, else UTF-8)."""
    raw = f"{username}:{password}"
    try:
        encoded = raw.encode("latin-1")
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


class _AuthorizationHeader(requests.auth.AuthBase):
    """Sets one fixed ``Authorization`` header.

    Used instead of ``session.headers`` so that ``requests`` treats it as authentication: it is
    not replaced by ``~/.netrc`` credentials, and it is dropped (not re-sent) when a redirect
    leads to another host.
    """

    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self._value
        return r

    def __repr__(self) -> str:
        return "<Authorization header (redacted)>"


def _normalise_timeout(timeout: TimeoutArg) -> TimeoutArg:
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError("timeout tuple must be (connect, read)")
        connect, read = (float(timeout[0]), float(timeout[1]))
        if connect <= 0 or read <= 0:
            raise ValueError("timeouts must be positive")
        return (connect, read)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds, a (connect, read) tuple or None")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return float(timeout)


def _connection_reason(exc: BaseException) -> Tuple[str, str]:
    """A short reason and a hint for a connection failure, from the ``requests`` exception."""
    text = repr(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            "TLS handshake failed",
            "check the certificate, pass verify='/path/to/ca.pem' for a private CA, "
            "or verify=False to skip the check",
        )
    if "Connection refused" in text or "Errno 111" in text or "WinError 10061" in text:
        return (
            "connection refused",
            "is ComfyUI running, and listening on this host and port "
            "(start it with --listen/--port)?",
        )
    for marker in (
        "NameResolutionError",
        "Name or service not known",
        "nodename nor servname",
        "Temporary failure in name resolution",
        "getaddrinfo failed",
        "No address associated with hostname",
    ):
        if marker in text:
            return ("the host name could not be resolved", "check the host name in the URL")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return ("the connection broke while reading the answer", "retry the request")
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return ("too many redirects", "check the URL and the reverse proxy configuration")
    return (
        f"connection failed ({type(exc).__name__})",
        "check that the URL is right and the server reachable",
    )


def _body_from_bytes(data: bytes, content_type: str) -> Any:
    """The body of an error answer: decoded JSON when it parses, else text (never raises)."""
    if not data:
        return ""
    text = data.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if "json" in content_type.lower() or stripped[:1] in ("{", "[", '"'):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _read_limited(response: requests.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of a (possibly streamed) body, then close the response."""
    try:
        if response.raw is None or getattr(response, "_content_consumed", False):
            return bytes(response.content[:limit])
        chunks: List[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]
    except requests.exceptions.RequestException:
        return b""
    finally:
        response.close()


def _status_hint(status: int) -> str:
    if status in (401, 407):
        return (
            "the server or a proxy in front of it wants credentials: "
            "pass auth=(user, pw) or token="
        )
    if status == 403:
        return (
            "forbidden: wrong credentials, a proxy rule, or ComfyUI's origin check "
            "(do not send an Origin header that differs from Host)"
        )
    if status == 413:
        return "the request body is larger than the server's --max-upload-size"
    if status in (502, 503, 504):
        return "a proxy could not reach ComfyUI behind it"
    return ""


def decode_json(response: requests.Response, *, method: str = "GET", url: str = "") -> Any:
    """The JSON value of a 2xx answer.

    A 200 that is not JSON (typically a reverse proxy's login or error page) raises
    :class:`ComfyHTTPError` with the first lines of the body — never ``JSONDecodeError``.
    An empty body decodes to ``None``.
    """
    display_url = url or _strip_userinfo(response.url or "")
    data = response.content
    if not data or not data.strip():
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        content_type = response.headers.get("Content-Type", "unknown content type")
        text = data[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace")
        hint = ""
        if "html" in content_type.lower() or text.lstrip()[:1] == "<":
            hint = " (an HTML page: is a proxy or login page in front of ComfyUI?)"
        raise ComfyHTTPError(
            response.status_code,
            display_url,
            text,
            method=method,
            message=(
                f"{method} {display_url} answered HTTP {response.status_code} with a body that "
                f"is not JSON ({content_type}){hint}"
                + (f": {_preview(text)}" if text.strip() else "")
            ),
        ) from None


def iter_response(
    response: requests.Response, *, chunk_size: int, method: str = "GET", url: str = ""
) -> Iterator[bytes]:
    """The body of a streamed response in chunks, with the transport's typed errors for a
    connection that breaks or stalls mid-body. Closes the response at the end."""
    display_url = url or _strip_userinfo(response.url or "")
    try:
        yield from response.iter_content(chunk_size=chunk_size)
    except requests.exceptions.Timeout as exc:
        raise ComfyTimeoutError(
            f"{method} {display_url}: timed out while reading the answer", url=display_url
        ) from exc
    except requests.exceptions.RequestException as exc:
        reason, hint = _connection_reason(exc)
        raise ComfyConnectionError(
            f"{method} {display_url}: {reason} while reading the answer — {hint}",
            url=display_url,
        ) from exc
    finally:
        response.close()


def _preview(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    out = "\n".join(lines[:5])
    return out[:500] + ("…" if len(out) > 500 else "")


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


class HttpTransport:
    """One ComfyUI server address plus one ``requests.Session`` with its credentials.

    ``request()`` returns the ``requests.Response`` of any 2xx answer and raises the typed
    errors of :mod:`comfysync.errors` for everything else, so callers never see a ``requests``
    exception. Thread-safe for concurrent requests (the session's connection pool is shared).
    """

    def __init__(
        self,
        url: str,
        *,
        auth: Optional[Tuple[str, str]] = None,
        token: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutArg = 30.0,
        verify: VerifyArg = True,
        session: Optional[requests.Session] = None,
    ) -> None:
        parsed = parse_base_url(url)
        if auth is None and parsed.username is not None:
            auth = (parsed.username, parsed.password or "")
        if auth is not None and token is not None:
            raise ValueError("give either auth=(user, password) or token=, not both")
        if auth is not None:
            if not (isinstance(auth, tuple) and len(auth) == 2):
                raise TypeError("auth must be a (user, password) tuple")
            authorization: Optional[str] = _basic_header(str(auth[0]), str(auth[1]))
            self._auth_kind: Optional[str] = "basic"
        elif token is not None:
            if not isinstance(token, str) or not token:
                raise ValueError("token must be a non-empty string")
            authorization = f"Bearer {token}"
            self._auth_kind = "bearer"
        else:
            authorization = None
            self._auth_kind = None
        self._parsed = ParsedURL(
            parsed.scheme, parsed.host, parsed.port, parsed.explicit_port, parsed.prefix
        )
        self._authorization = authorization
        self._extra_headers: Dict[str, str] = {str(k): str(v) for k, v in (headers or {}).items()}
        self.timeout: TimeoutArg = _normalise_timeout(timeout)
        if isinstance(verify, os.PathLike):
            verify = os.fspath(verify)
        if not isinstance(verify, (bool, str)):
            raise TypeError("verify must be True, False or the path of a CA bundle")
        self.verify: Union[bool, str] = verify
        self._closed = False

        self._session = session if session is not None else requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=_POOL_MAXSIZE)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.verify = verify
        self._session.headers.update(self._extra_headers)
        if authorization is not None:
            self._session.auth = _AuthorizationHeader(authorization)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``scheme://host[:port][/prefix]``, without credentials and trailing slash."""
        return self._parsed.base_url

    @property
    def scheme(self) -> str:
        return self._parsed.scheme

    @property
    def host(self) -> str:
        return self._parsed.host

    @property
    def port(self) -> int:
        return self._parsed.port

    @property
    def prefix(self) -> str:
        return self._parsed.prefix

    @property
    def auth_kind(self) -> Optional[str]:
        """``"basic"``, ``"bearer"`` or ``None`` — what ``repr`` may show instead of secrets."""
        return self._auth_kind

    @property
    def closed(self) -> bool:
        return self._closed

    def url(self, path: str, params: Optional[Mapping[str, Any]] = None) -> str:
        """Absolute URL of route ``path`` (which must start with ``/`` and be already quoted)."""
        if not path.startswith("/"):
            path = "/" + path
        full = self.base_url + path
        clean = _clean_params(params)
        if clean:
            full += "?" + urlencode(clean, doseq=True)
        return full

    def ws_url(self, client_id: str) -> str:
        """``ws(s)://host[:port][/prefix]/ws?clientId=<id>`` for the listener."""
        scheme = "wss" if self.scheme == "https" else "ws"
        return (
            f"{scheme}://{self._parsed.netloc}{self.prefix}/ws?clientId="
            f"{quote(client_id, safe='')}"
        )

    def ws_headers(self) -> List[str]:
        """``"Name: value"`` lines for the WebSocket handshake: extra headers, then auth."""
        lines = [f"{name}: {value}" for name, value in self._extra_headers.items()]
        if self._authorization is not None:
            lines = [ln for ln in lines if not ln.lower().startswith("authorization:")]
            lines.append(f"Authorization: {self._authorization}")
        return lines

    def ws_sslopt(self) -> Dict[str, Any]:
        """websocket-client ``sslopt`` matching ``verify`` (only meaningful for ``wss://``)."""
        if self.verify is False:
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        if isinstance(self.verify, str):
            key = "ca_cert_path" if os.path.isdir(self.verify) else "ca_certs"
            return {"cert_reqs": ssl.CERT_REQUIRED, key: self.verify}
        return {}

    # -- requests ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        stream: bool = False,
        timeout: TimeoutArg = None,
    ) -> requests.Response:
        """Send one request; return the response of a 2xx answer, raise a typed error else.

        ``timeout=None`` uses the transport's default. With ``stream=True`` the caller must
        consume or close the response.
        """
        method = method.upper()
        display_url = self.url(path, params)
        if self._closed:
            raise ComfyConnectionError(
                f"{method} {display_url}: this client is closed; create a new one",
                url=display_url,
            )
        effective_timeout = self.timeout if timeout is None else _normalise_timeout(timeout)
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                self.base_url + (path if path.startswith("/") else "/" + path),
                params=_clean_params(params) or None,
                json=json,
                data=data,
                files=files,
                headers=dict(headers) if headers else None,
                stream=stream,
                timeout=effective_timeout,
                # Per request: a session-level verify=False would lose against
                # REQUESTS_CA_BUNDLE in requests' environment merging.
                verify=self.verify,
            )
        except requests.exceptions.Timeout as exc:
            kind = "connecting to" if isinstance(exc, requests.exceptions.ConnectTimeout) else (
                "waiting for an answer from"
            )
            log.debug("%s %s timed out", method, display_url)
            raise ComfyTimeoutError(
                f"{method} {display_url}: timed out {kind} the server "
                f"(timeout={_describe_timeout(effective_timeout)}); raise timeout= if the "
                "server is busy",
                url=display_url,
            ) from exc
        except requests.exceptions.RequestException as exc:
            reason, hint = _connection_reason(exc)
            log.debug("%s %s failed: %s", method, display_url, reason)
            raise ComfyConnectionError(
                f"cannot reach ComfyUI at {self.base_url} ({method} {display_url}): "
                f"{reason} — {hint}",
                url=display_url,
            ) from exc
        elapsed = time.monotonic() - started
        log.debug("%s %s -> %s in %.3fs", method, display_url, response.status_code, elapsed)
        if 200 <= response.status_code < 300:
            return response
        raise self._http_error(response, method, display_url, stream)

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the decoded JSON body (``None`` for an empty body)."""
        response = self.request(method, path, **kwargs)
        url = self.url(path, kwargs.get("params"))
        return decode_json(response, method=method.upper(), url=url)

    def _http_error(
        self, response: requests.Response, method: str, display_url: str, stream: bool
    ) -> ComfyHTTPError:
        raw = _read_limited(response, _ERROR_BODY_LIMIT) if stream else response.content
        body = _body_from_bytes(raw, response.headers.get("Content-Type", ""))
        hint = _status_hint(response.status_code)
        message = f"{method} {display_url} failed with HTTP {response.status_code}"
        preview = _preview(body) if isinstance(body, str) else _preview(_compact(body))
        if preview:
            message += f": {preview}"
        if hint:
            message += f" ({hint})"
        return ComfyHTTPError(
            response.status_code, display_url, body, method=method, message=message
        )

    def close(self) -> None:
        """Close the session's pooled connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._session.close()

    def __repr__(self) -> str:
        auth = f" auth={self._auth_kind}" if self._auth_kind else ""
        state = " closed" if self._closed else ""
        return f"<HttpTransport {self.base_url}{auth}{state}>"


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _describe_timeout(timeout: TimeoutArg) -> str:
    if timeout is None:
        return "none"
    if isinstance(timeout, tuple):
        return f"({timeout[0]:g}s connect, {timeout[1]:g}s read)"
    return f"{timeout:g}s"


def _clean_params(params: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Query parameters without ``None`` values; booleans as ``true``/``false``."""
    if not params:
        return {}
    clean: Dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        clean[key] = value
    return clean

