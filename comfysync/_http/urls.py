"""ComfyUI server addresses: parsing a base URL, building route and WebSocket URLs, redaction.

Pure functions and one value object, no I/O: the transport, the pool (which compares server
addresses) and the error messages all read an address the same way. Credentials written into
a URL (``http://user:pw@host``) are split off by :func:`parse_base_url` and never appear in
a URL this module builds or in a message it writes.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional
from urllib.parse import quote, unquote, urlencode, urlsplit

from attrs import define, field

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SERVER",
    "SERVER_ENV",
    "ParsedURL",
    "clean_params",
    "origin_of",
    "parse_base_url",
    "redact_userinfo",
    "resolve_server_url",
    "strip_userinfo",
]

DEFAULT_PORT = 8188
"""ComfyUI's default port, used when a bare ``host`` (no scheme) is given."""

DEFAULT_SERVER = "127.0.0.1:8188"
"""The server used when neither a URL nor ``$COMFYUI_URL`` is given."""

SERVER_ENV = "COMFYUI_URL"
"""The environment variable read for the server URL when none is given."""

_SCHEME_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME_ALIASES = {"ws": "http", "wss": "https"}


@define(frozen=True)
class ParsedURL:
    """The pieces of a ComfyUI base URL, credentials separated out.

    ``host`` is the bare host name or IP (IPv6 without brackets), ``port`` the effective port,
    ``explicit_port`` whether the port must appear in URLs (False only for ``http(s)://host``
    written without a port, where the scheme default applies), ``prefix`` the path prefix
    without trailing slash (``""`` or e.g. ``"/comfy"``). ``username``/``password`` are the
    decoded user info of the URL, if any; they are never part of a URL built from this object
    nor of its ``repr``. ``ws_path_stripped`` is true when the given URL was the WebSocket
    route (``…/ws``) and that last segment was dropped from ``prefix`` (not part of equality:
    ``ws://h:8188/ws`` and ``http://h:8188`` are the same server).
    """

    scheme: str
    host: str
    port: int
    explicit_port: bool
    prefix: str
    username: Optional[str] = field(default=None, repr=False)
    password: Optional[str] = field(default=None, repr=False)
    ws_path_stripped: bool = field(default=False, repr=False, eq=False)

    @property
    def netloc(self) -> str:
        """``host[:port]`` with IPv6 literals in brackets, never with credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host

    @property
    def origin(self) -> str:
        """``scheme://host:port`` (port always written): the origin credentials belong to.
        Two URLs are the same origin exactly when their :func:`origin_of` strings are equal."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``scheme://host[:port][/prefix]``: no credentials, no trailing slash."""
        return f"{self.scheme}://{self.netloc}{self.prefix}"

    def route(self, path: str) -> str:
        """The absolute URL of route ``path`` (already quoted; a missing leading ``/`` is
        added), without a query string."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def url(self, path: str, params: Optional[Mapping[str, Any]] = None) -> str:
        """:meth:`route` of ``path`` plus the query string of ``params`` as
        :func:`clean_params` sends them (``None`` values left out, booleans as
        ``true``/``false``)."""
        full = self.route(path)
        clean = clean_params(params)
        if clean:
            full += "?" + urlencode(clean, doseq=True)
        return full

    def ws_url(self, client_id: str) -> str:
        """``ws(s)://host[:port][/prefix]/ws?clientId=<id>``: ``wss`` exactly when the REST
        scheme is ``https``, the same host, port and prefix, ``client_id`` percent-encoded."""
        scheme = "wss" if self.scheme == "https" else "ws"
        return f"{scheme}://{self.netloc}{self.prefix}/ws?clientId={quote(client_id, safe='')}"

    def __repr__(self) -> str:
        return f"ParsedURL({self.base_url!r})"


def parse_base_url(url: str) -> ParsedURL:
    """Parse ``url``: ``host``, ``host:port``, ``[v6]:port`` or
    ``http(s)://[user:pw@]host[:port][/prefix]``.

    A bare host (no scheme) means ``http://host:8188``. An explicit scheme without a port keeps
    that scheme's default port (80/443), because a reverse proxy at ``https://comfy.example.com/``
    listens there, not on 8188. ``ws://``/``wss://`` are accepted as aliases of ``http``/``https``,
    and a path ending in the WebSocket route ``/ws`` (the socket's URL given instead of the
    server's) is read without that segment (``ParsedURL.ws_path_stripped``; the transport
    warns), since every route, ``/ws`` included, is built below the base URL.
    Raises :class:`TypeError` for a non-string and :class:`ValueError` for anything else that
    is not such an address (the message never repeats a password).
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
        raise ValueError(f"invalid server URL {redact_userinfo(url)!r}: {exc}") from None
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in _SCHEME_DEFAULT_PORTS:
        raise ValueError(
            f"unsupported URL scheme {parts.scheme!r} in {redact_userinfo(url)!r}; "
            "use http:// or https://"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"server URL {redact_userinfo(url)!r} has no host")
    if parts.query or parts.fragment:
        raise ValueError(
            f"server URL {redact_userinfo(url)!r} must not contain a query or fragment"
        )
    explicit_port = port is not None
    if port is None:
        port = DEFAULT_PORT if not has_scheme else _SCHEME_DEFAULT_PORTS[scheme]
        explicit_port = not has_scheme
    prefix = parts.path.rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    ws_path_stripped = prefix == "/ws" or prefix.endswith("/ws")
    if ws_path_stripped:
        prefix = prefix[: -len("/ws")].rstrip("/")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ParsedURL(scheme, host, port, explicit_port, prefix, username, password,
                     ws_path_stripped=ws_path_stripped)


def resolve_server_url(url: Optional[str]) -> str:
    """``url`` when given, else ``$COMFYUI_URL``, else :data:`DEFAULT_SERVER` — the rule of
    ``ComfyApi()`` and the CLI. A ``$COMFYUI_URL`` that is not a server address raises
    :class:`ValueError` naming the variable (never its credentials)."""
    if url is not None:
        return url
    env = os.environ.get(SERVER_ENV, "").strip()
    if not env:
        return DEFAULT_SERVER
    try:
        parse_base_url(env)
    except ValueError as exc:
        raise ValueError(f"${SERVER_ENV}: {exc}") from None
    return env


def origin_of(url: str) -> str:
    """The origin (``scheme://host:port``, lower case, port always written) of the absolute
    ``url`` — e.g. a redirect's ``Location`` — compared with :attr:`ParsedURL.origin` to
    decide whether credentials may go there. ``ws``/``wss`` count as ``http``/``https``
    (the WebSocket handshake is an HTTP request to the same origin). An unparseable URL
    gives a string no real origin equals (``"<invalid URL>"``), never an exception."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    host = (parts.hostname or "").lower()
    if port is None:
        port = _SCHEME_DEFAULT_PORTS.get(scheme)
    if not host or port is None:
        return "<invalid URL>"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def redact_userinfo(url: str) -> str:
    """``url`` as the user wrote it (scheme optional, possibly unparseable) with any
    ``user:password@`` part replaced by ``***@``, for error messages."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    slash = url.find("/", start)
    netloc_end = slash if slash >= 0 else len(url)
    at = url.rfind("@", start, netloc_end)
    if at < 0:
        return url
    return url[:start] + "***@" + url[at + 1:]


def strip_userinfo(url: str) -> str:
    """The well-formed absolute ``url`` (e.g. ``response.url``) without its
    ``user:password@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def clean_params(params: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The query ``params`` as ComfyUI reads them: ``None`` values left out (the server's default
    applies), booleans as ``true``/``false`` (not Python's ``True``)."""
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
