"""HTTP transport: one ComfyUI address and its connection settings, sending requests.

Everything that talks HTTP goes through :class:`HttpTransport`, so there is exactly one place
that holds credentials, TLS options and timeouts and sends requests. The WebSocket listener
asks it for the ``ws://`` URL, the handshake headers and the TLS options, so REST and
WebSocket always agree. The checked settings are a frozen
:class:`~comfysync._http.settings.ConnectionSettings` (a new transport can be built from them,
e.g. for a result whose client was closed); the sessions that keep credentials on the
server's origin and retry idempotent requests live in :mod:`comfysync._http.sessions`; address
parsing in :mod:`comfysync._http.urls`, the wording of HTTP errors in
:mod:`comfysync._http.errors`.

Credentials never leave this module in readable form: :attr:`HttpTransport.base_url` is the
address without user info, ``repr`` names only the *kind* of authentication, and error messages
use the redacted URL.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlencode

import requests

from .._version import __version__
from ..errors import ComfyConnectionError
from .errors import (
    ca_bundle_failure,
    decode_json,
    foreign_redirect_error,
    http_error,
    is_ca_bundle_error,
    reading_failure,
    request_failure,
)
from .sessions import SessionSet
from .settings import (
    ConnectionSettings,
    RetriesArg,
    TimeoutArg,
    VerifyArg,
    normalise_timeout,
)
from .urls import (
    DEFAULT_PORT,
    ParsedURL,
    clean_params,
    origin_of,
    parse_base_url,
    redact_userinfo,
    strip_userinfo,
)

__all__ = [
    "DEFAULT_PORT",
    "ConnectionSettings",
    "HttpTransport",
    "ParsedURL",
    "RetriesArg",
    "TimeoutArg",
    "USER_AGENT",
    "VerifyArg",
    "decode_json",
    "iter_response",
    "parse_base_url",
]

log = logging.getLogger("comfysync.transport")

USER_AGENT = f"comfysync/{__version__} {requests.utils.default_user_agent()}"
"""Sent with every HTTP request unless ``headers=`` names another ``User-Agent``: lets a
server or proxy log tell comfysync's traffic from other clients'."""

_ABSOLUTE = ("http://", "https://")


def iter_response(
    response: requests.Response, *, chunk_size: int, method: str = "GET", url: str = ""
) -> Iterator[bytes]:
    """The body of a streamed response in chunks of at most ``chunk_size`` bytes.

    A connection that stalls or breaks mid-body raises :class:`~comfysync.ComfyTimeoutError`
    or :class:`~comfysync.ComfyConnectionError` naming ``method`` and ``url`` (default: the
    response's URL without credentials), never a ``requests`` exception. Closes the response
    at the end, also when the caller stops early.
    """
    display_url = url or strip_userinfo(response.url or "")
    try:
        yield from response.iter_content(chunk_size=chunk_size)
    except requests.exceptions.RequestException as exc:
        raise reading_failure(exc, method, display_url) from exc
    finally:
        response.close()


class HttpTransport:
    """One ComfyUI server address plus one ``requests.Session`` with its credentials.

    ``request()`` returns the ``requests.Response`` of any 2xx answer and raises the typed
    errors of :mod:`comfysync.errors` for everything else, so callers never see a ``requests``
    exception. Thread-safe for concurrent requests (the session's connection pool is shared).
    ``route_check(method, path)``, when set, is called before each request, and
    ``route_missing(method, path)`` when one answers 404: either may refuse a route the
    server's surface does not have (the client sets them; see ``comfysync._v2.choice``).
    """

    route_check: Optional[Callable[[str, str], None]] = None
    route_missing: Optional[Callable[[str, str], None]] = None

    def __init__(
        self,
        url: str,
        *,
        auth: Optional[Tuple[str, str]] = None,
        token: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: TimeoutArg = 30.0,
        verify: VerifyArg = True,
        retries: RetriesArg = None,
    ) -> None:
        settings = ConnectionSettings.create(
            url, auth=auth, token=token, headers=headers, timeout=timeout, verify=verify,
            retries=retries,
        )
        if settings.address.ws_path_stripped:
            log.warning(
                "the server URL %s ends with the WebSocket route /ws; using %s as the base URL "
                "(comfysync adds /ws itself)", redact_userinfo(url.strip()), settings.base_url,
            )
        self._setup(settings)

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> HttpTransport:
        """A new transport (its own connections) with the address, credentials, TLS,
        timeout and retries of ``settings`` — e.g. for a result whose client was closed."""
        transport = cls.__new__(cls)
        transport._setup(settings)
        return transport

    def _setup(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._parsed = settings.address
        self.timeout: TimeoutArg = settings.timeout
        self.verify: Union[bool, str] = settings.verify
        self._closed = False
        user_agent = next((v for k, v in settings.headers if k.lower() == "user-agent"),
                          USER_AGENT)
        self._sessions = SessionSet(settings, user_agent)
        self._session = self._sessions.api  # API calls (tests hook it to observe requests)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``scheme://host[:port][/prefix]``, without credentials and trailing slash."""
        return self._parsed.base_url

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"`` (``ws``/``wss`` in the given URL are read as these)."""
        return self._parsed.scheme

    @property
    def host(self) -> str:
        """The host name or IP address (IPv6 without brackets)."""
        return self._parsed.host

    @property
    def port(self) -> int:
        """The effective port: as given, else 8188 for a bare host, else 80/443."""
        return self._parsed.port

    @property
    def prefix(self) -> str:
        """The path prefix of a reverse proxy (``"/comfy"``), ``""`` when there is none."""
        return self._parsed.prefix

    @property
    def origin(self) -> str:
        """``scheme://host:port`` of the server: the only origin credentials are sent to."""
        return self.settings.origin

    @property
    def auth_kind(self) -> Optional[str]:
        """``"basic"``, ``"bearer"`` or ``None`` — what ``repr`` may show instead of secrets."""
        return self.settings.auth_kind

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called; every later request raises."""
        return self._closed

    def url(self, path: str, params: Optional[Mapping[str, Any]] = None) -> str:
        """Absolute URL of route ``path`` (already quoted; a missing leading ``/`` is added)
        with the query string of ``params`` (``None`` values left out), without credentials:
        what requests go to and what error messages show."""
        return self._parsed.url(path, params)

    def ws_url(self, client_id: str) -> str:
        """``ws(s)://host[:port][/prefix]/ws?clientId=<client_id>`` for the listener (see
        :meth:`ParsedURL.ws_url`)."""
        return self._parsed.ws_url(client_id)

    def ws_headers(self) -> List[str]:
        """``"Name: value"`` lines for the WebSocket handshake: extra headers, then auth.
        Credentials, all of them: only for :attr:`origin`."""
        settings = self.settings
        lines = [f"{name}: {value}" for name, value in settings.headers]
        if settings.authorization is not None:
            lines = [ln for ln in lines if not ln.lower().startswith("authorization:")]
            lines.append(f"Authorization: {settings.authorization}")
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
        allow_foreign: bool = False,
    ) -> requests.Response:
        """Send one request; return the response of a 2xx answer, raise a typed error else.

        ``method`` is the HTTP verb (any case); ``path`` the route below the base URL,
        already quoted (or, for ``allow_foreign``, an absolute ``http(s)://`` URL); ``params``
        its query
        (``None`` values left out, booleans as ``true``/``false``); ``json``, ``data`` and
        ``files`` the body as ``requests`` takes them; ``headers`` extra headers for this
        request only. ``timeout`` (seconds or ``(connect, read)``) overrides the transport's
        default when not ``None``. With ``stream`` true the body is not read yet: the caller
        must consume or close the response.

        Credentials (``auth``, ``token``, ``headers=``) go only to :attr:`origin`. A redirect
        to another origin is refused (:class:`~comfysync.ComfyConnectionError` naming both
        origins) unless ``allow_foreign`` is true — for file downloads, whose storage may be
        elsewhere (signed URLs): then it is followed, and an absolute ``path`` on another
        origin fetched, without any credential. Same-origin redirects are followed.

        Raises :class:`~comfysync.ComfyTimeoutError` or :class:`~comfysync.ComfyConnectionError`
        when no answer came (or the transport is closed) and :class:`~comfysync.ComfyHTTPError`
        for a non-2xx answer; never a ``requests`` exception.
        """
        method = method.upper()
        if path.startswith(_ABSOLUTE):
            target = path
            display_url = strip_userinfo(path)
            if params:
                display_url += ("&" if "?" in display_url else "?") + urlencode(
                    clean_params(params), doseq=True)
            same_origin = origin_of(path) == self.origin
            if not same_origin and not allow_foreign:
                raise foreign_redirect_error(method, display_url, self.origin, origin_of(path))
        else:
            target = self._parsed.route(path)
            display_url = self.url(path, params)
            same_origin = True
        if self._closed:
            raise ComfyConnectionError(
                f"{method} {display_url}: this client is closed; create a new one",
                url=display_url,
            )
        if self.route_check is not None:
            self.route_check(method, path)
        effective_timeout = self.timeout if timeout is None else normalise_timeout(timeout)
        session = self._sessions.pick(allow_foreign, same_origin)
        started = time.monotonic()
        try:
            response = session.request(
                method,
                target,
                params=clean_params(params) or None,
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
        except requests.exceptions.RequestException as exc:
            error = request_failure(exc, method, display_url, self.base_url, effective_timeout)
            log.debug("request failed: %s", error)
            raise error from exc
        except OSError as exc:  # requests checks CA bundle paths itself, before connecting
            if not is_ca_bundle_error(exc):
                raise  # e.g. reading a local file to upload: the caller's OSError
            error = ca_bundle_failure(exc, method, display_url, self.base_url)
            log.debug("request failed: %s", error)
            raise error from exc
        elapsed = time.monotonic() - started
        log.debug("%s %s -> %s in %.3fs", method, display_url, response.status_code, elapsed)
        if 200 <= response.status_code < 300:
            return response
        error = http_error(response, method, display_url, stream, prefix=self.prefix)
        if response.status_code == 404 and self.route_missing is not None:
            self.route_missing(method, path)
        raise error

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request` of ``method`` ``path`` (same keyword arguments and errors), then
        the decoded JSON body:
        ``None`` for an empty body, :class:`~comfysync.ComfyHTTPError` for one that is not
        JSON."""
        response = self.request(method, path, **kwargs)
        url = self.url(path, kwargs.get("params"))
        return decode_json(response, method=method.upper(), url=url)

    def close(self) -> None:
        """Close the session's pooled connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sessions.close()

    def __repr__(self) -> str:
        auth = f" auth={self.auth_kind}" if self.auth_kind else ""
        state = " closed" if self._closed else ""
        return f"<HttpTransport {self.base_url}{auth}{state}>"

