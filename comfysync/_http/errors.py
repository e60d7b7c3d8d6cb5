"""What a failed HTTP exchange means: typed :mod:`comfysync.errors` from ``requests`` failures,
non-2xx answers and 2xx answers that are not the JSON they should be.

Kept apart from the transport so the wording of every HTTP error lives in one place. Each
message names the method and the URL (never with credentials: callers pass the redacted URL,
and response URLs are stripped here), says what went wrong, and where it can, what to do
about it — a refused connection asks whether ComfyUI runs, a 413 names
``--max-upload-size``, a 200 HTML page suspects a login proxy.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
from typing import Any, List, Optional, Tuple

import requests
import urllib3

from ..errors import ComfyConnectionError, ComfyError, ComfyHTTPError, ComfyTimeoutError
from .urls import strip_userinfo

__all__ = [
    "ERROR_BODY_LIMIT",
    "ca_bundle_failure",
    "decode_json",
    "is_ca_bundle_error",
    "describe_timeout",
    "foreign_redirect_error",
    "ForeignRedirect",
    "http_error",
    "reading_failure",
    "request_failure",
    "retry_after_seconds",
]

ERROR_BODY_LIMIT = 64 * 1024
"""Bytes of an error answer kept in :attr:`ComfyHTTPError.body` (a proxy may send megabytes)."""


class ForeignRedirect(requests.exceptions.RequestException):
    """Raised inside ``requests``' redirect handling to stop a request that would leave the
    server's origin; :func:`request_failure` turns it into the user's error."""

    def __init__(self, origin: str, target_origin: str) -> None:
        super().__init__(f"redirect from {origin} to {target_origin} refused")
        self.origin = origin
        self.target_origin = target_origin


def foreign_redirect_error(
    what: str, display_url: str, origin: str, target_origin: str
) -> ComfyConnectionError:
    """The error for a request (``what``: ``"GET"``, ``"the WebSocket handshake"``…) to
    ``display_url`` that the server redirected from ``origin`` to ``target_origin``: never
    followed, since the request carries this client's credentials, which belong to
    ``origin`` only."""
    return ComfyConnectionError(
        f"{what} {display_url} was redirected from {origin} to another origin, "
        f"{target_origin}; refused: comfysync sends requests with the client's credentials "
        f"only to the origin of the server URL ({origin}) — if the server moved, give its new "
        "URL",
        url=display_url,
    )


def request_failure(
    exc: requests.exceptions.RequestException, method: str, display_url: str, base_url: str,
    timeout: Any,
) -> ComfyError:
    """The typed error for ``exc``, raised by ``requests`` for a request that got no answer:
    :class:`ComfyTimeoutError` (naming whether connecting or waiting timed out, and the
    ``timeout`` in force) or :class:`ComfyConnectionError` with the reason, a hint and the
    server's ``base_url``. ``method`` and ``display_url`` (redacted) name the request.
    A redirect refused for leaving the server's origin names both origins."""
    if isinstance(exc, ForeignRedirect):
        return foreign_redirect_error(method, display_url, exc.origin, exc.target_origin)
    if isinstance(exc, requests.exceptions.Timeout):
        kind = "connecting to" if isinstance(exc, requests.exceptions.ConnectTimeout) else (
            "waiting for an answer from"
        )
        return ComfyTimeoutError(
            f"{method} {display_url}: timed out {kind} the server "
            f"(timeout={describe_timeout(timeout)}); raise timeout= if the server is busy",
            url=display_url,
            request_sent=False if _never_sent(exc) else None,
        )
    reason, hint = _connection_reason(exc)
    return ComfyConnectionError(
        f"cannot reach ComfyUI at {base_url} ({method} {display_url}): {reason} — {hint}",
        url=display_url,
        request_sent=False if _never_sent(exc) else None,
    )


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when ``exc`` failed before any byte of the request left (no connection was
    made: refused, name not resolved, connect timeout, TLS handshake): the server surely did
    not get it. Anything else (reset, closed, read timeout) may have reached it."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                               urllib3.exceptions.ConnectTimeoutError))


def ca_bundle_failure(exc: OSError, method: str, display_url: str,
                      base_url: str) -> ComfyConnectionError:
    """The typed error for the ``OSError`` requests raises before connecting when the CA
    bundle (``verify=`` or ``$REQUESTS_CA_BUNDLE``/``$CURL_CA_BUNDLE``) or a client
    certificate file it was given does not exist."""
    return ComfyConnectionError(
        f"cannot reach ComfyUI at {base_url} ({method} {display_url}): the CA bundle or "
        f"certificate file cannot be used ({exc}) — check verify= and the REQUESTS_CA_BUNDLE "
        "/ CURL_CA_BUNDLE environment variables",
        url=display_url,
    )


def is_ca_bundle_error(exc: BaseException) -> bool:
    """True for requests' own ``OSError`` about a missing CA bundle / certificate file (not a
    ``RequestException``: it is raised before any connection is tried)."""
    text = str(exc)
    return text.startswith("Could not find") and "TLS" in text


def reading_failure(
    exc: requests.exceptions.RequestException, method: str, display_url: str
) -> ComfyError:
    """The typed error for ``exc``, raised by ``requests`` when a connection stalled
    (:class:`ComfyTimeoutError`) or broke (:class:`ComfyConnectionError`) while a streamed
    body was being read. ``method`` and ``display_url`` (redacted) name the request."""
    if isinstance(exc, requests.exceptions.Timeout):
        return ComfyTimeoutError(
            f"{method} {display_url}: timed out while reading the answer", url=display_url
        )
    reason, hint = _connection_reason(exc)
    return ComfyConnectionError(
        f"{method} {display_url}: {reason} while reading the answer — {hint}", url=display_url
    )


def http_error(
    response: requests.Response, method: str, display_url: str, stream: bool,
    prefix: str = "",
) -> ComfyHTTPError:
    """The :class:`ComfyHTTPError` for a non-2xx ``response`` to ``method`` ``display_url``
    (redacted): status, URL, the decoded body
    (JSON when it parses, else text; at most :data:`ERROR_BODY_LIMIT` bytes read when
    ``stream`` is true, and the response closed) and a message with the body's first lines
    plus a hint for statuses that have a usual cause. ``prefix`` is the base URL's path
    prefix: a 404 below one suggests checking it."""
    raw = _read_limited(response, ERROR_BODY_LIMIT) if stream else response.content
    body = _body_from_bytes(raw, response.headers.get("Content-Type", ""))
    hint = _status_hint(response.status_code, prefix, _from_the_server(response, body))
    message = f"{method} {display_url} failed with HTTP {response.status_code}"
    preview = _preview(body) if isinstance(body, str) else _preview(_compact(body))
    if preview:
        message += f": {preview}"
    if hint:
        message += f" ({hint})"
    return ComfyHTTPError(response.status_code, display_url, body, method=method, message=message,
                          retry_after=retry_after_seconds(response.headers.get("Retry-After")))


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` header as seconds (delta-seconds or an HTTP date), None when absent
    or unreadable; never negative."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def decode_json(response: requests.Response, *, method: str = "GET", url: str = "") -> Any:
    """The JSON value of ``response``, a 2xx answer.

    ``method`` and ``url`` (default: the response's URL without credentials) are for the
    error message. A 200 that is not JSON (typically a reverse proxy's login or error page)
    raises :class:`ComfyHTTPError` with the first lines of the body — never
    ``JSONDecodeError``. An empty body decodes to ``None``.
    """
    display_url = url or strip_userinfo(response.url or "")
    data = response.content
    if not data or not data.strip():
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        content_type = response.headers.get("Content-Type", "unknown content type")
        text = data[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace")
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


def describe_timeout(timeout: Any) -> str:
    """The ``timeout`` setting for messages: ``"30s"``, ``"(5s connect, 60s read)"`` or
    ``"none"``."""
    if timeout is None:
        return "none"
    if isinstance(timeout, tuple):
        return f"({timeout[0]:g}s connect, {timeout[1]:g}s read)"
    return f"{timeout:g}s"


#: What OpenSSL says when the other side answers a TLS ClientHello in plain HTTP.
_PLAIN_HTTP_MARKERS = ("WRONG_VERSION_NUMBER", "record layer failure", "packet length too long")


def _connection_reason(exc: BaseException) -> Tuple[str, str]:
    """A short reason and a hint for a connection failure, from the ``requests`` exception."""
    text = repr(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        for marker in _PLAIN_HTTP_MARKERS:
            if marker in text:
                return (
                    "TLS handshake failed",
                    f"is the server really speaking HTTPS? ({marker}) — ComfyUI serves plain "
                    "HTTP unless started with --tls-keyfile/--tls-certfile: try http://",
                )
        if "NO_CERTIFICATE_OR_CRL_FOUND" in text:
            return (
                "TLS handshake failed",
                "the CA bundle given with verify= holds no certificate (is it a PEM file?)",
            )
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


#: aiohttp's default error text ("503: Service Unavailable"), which ComfyUI answers with
_AIOHTTP_DEFAULT_TEXT = re.compile(r"^\d{3}: [A-Za-z][A-Za-z -]*$")


def _from_the_server(response: requests.Response, body: Any) -> bool:
    """True when an error answer was written by ComfyUI itself (aiohttp), not by a proxy in
    front of it: aiohttp names itself in ``Server`` (a proxy that hides it still passes the
    body on), ComfyUI answers errors in JSON or with aiohttp's one-line default text, while
    a proxy's own 502/503/504 is an HTML page or empty."""
    if "aiohttp" in response.headers.get("Server", "").lower():
        return True
    if isinstance(body, (dict, list)):
        return True
    return isinstance(body, str) and bool(_AIOHTTP_DEFAULT_TEXT.match(body.strip()))


def _status_hint(status: int, prefix: str = "", from_server: bool = False) -> str:
    if status == 404 and prefix:
        return (
            f"if every route answers 404, check the path prefix {prefix!r} in the server URL"
        )
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
    if status in (502, 503, 504) and from_server:
        return "answered by the server itself, not by a proxy: it cannot serve this now"
    if status in (502, 503, 504):
        return "a proxy could not reach ComfyUI behind it"
    return ""


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


def _preview(text: str) -> str:
    """The first five non-blank lines of ``text``, at most 500 characters."""
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    out = "\n".join(lines[:5])
    return out[:500] + ("…" if len(out) > 500 else "")


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)
