"""The ``requests`` sessions of a transport: where credentials may go, and HTTP retries.

Credentials belong to the origin (scheme, host, port) of the server URL. ``requests`` alone
does not keep them there: it drops ``Authorization`` on a redirect to another host but sends
every other session header (an ``X-API-Key`` given with ``headers=``) to wherever a
``Location`` points. So each redirect hop is checked here, in :meth:`OriginSession.rebuild_auth`
(the hook ``requests`` calls for every hop):

* to the same origin: followed with the credentials;
* to another origin, for an API call: refused (:class:`~comfysync._http.errors.ForeignRedirect`,
  before anything is sent there);
* to another origin, for a file download: followed with every credential header removed
  (a signed URL on a storage host needs none, and must not see the server's).

Environment settings (``*_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``): ``requests`` reads
them again for every request, which costs more than the rest of a short request's client
side. They are read once per origin and kept (:class:`EnvOnceSession`); a process that
changes them later should create a new client.

Retries: urllib3's ``Retry`` on the connection adapter, for idempotent methods only; other
methods go through an adapter that never retries, whatever ``Retry`` the user gave (a
re-sent ``POST /prompt`` could run a workflow twice).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, FrozenSet, Hashable, MutableMapping, Optional, Tuple, Union

import requests
import requests.adapters
import requests.auth
import requests.utils
from urllib3.util.retry import Retry

from .errors import ForeignRedirect
from .settings import IDEMPOTENT_METHODS, ConnectionSettings
from .urls import origin_of

__all__ = ["EnvOnceSession", "MethodRouter", "OriginSession", "SessionSet"]

_POOL_MAXSIZE = 32
#: Origins whose environment settings a session keeps (signed download URLs may name a few
#: storage hosts; past this many the cache starts over).
_ENV_CACHE_SIZE = 64


class _AuthorizationHeader(requests.auth.AuthBase):
    """Sets one fixed ``Authorization`` header.

    Used instead of ``session.headers`` so that ``requests`` treats it as authentication: it
    is not replaced by ``~/.netrc`` credentials.
    """

    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self._value
        return r

    def __repr__(self) -> str:
        return "<Authorization header (redacted)>"


class _NoAuth(requests.auth.AuthBase):
    """Sends no credentials (and keeps ``requests`` from reading ``~/.netrc``)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class MethodRouter(requests.adapters.BaseAdapter):
    """A connection adapter that lets urllib3 retry idempotent requests (``retry``) and
    sends every other request exactly once (each through its own connection pool)."""

    def __init__(self, retry: Retry) -> None:
        super().__init__()
        self.retrying = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=_POOL_MAXSIZE, max_retries=retry
        )
        self.once = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=_POOL_MAXSIZE)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        adapter = self.retrying if (request.method or "").upper() in IDEMPOTENT_METHODS else (
            self.once
        )
        return adapter.send(request, **kwargs)

    def close(self) -> None:
        self.retrying.close()
        self.once.close()


class EnvOnceSession(requests.Session):
    """A session that reads the proxy and CA-bundle environment once per origin.

    ``requests`` merges them into every request (``merge_environment_settings``); the answer
    depends only on the environment, the URL's scheme, host and port, and the request's own
    ``proxies``/``stream``/``verify``/``cert``, so it is kept under exactly that key."""

    def __init__(self) -> None:
        super().__init__()
        self._env_lock = threading.Lock()
        self._env_cache: Dict[Hashable, Dict[str, Any]] = {}

    def merge_environment_settings(
        self,
        url: Union[str, bytes, None],
        proxies: Optional[MutableMapping[str, str]],
        stream: Optional[bool],
        verify: Any,
        cert: Any,
    ) -> Any:  # requests' own settings dict (its stubs name a private TypedDict)
        text = url.decode("latin-1") if isinstance(url, bytes) else (url or "")
        origin = origin_of(text)
        key: Optional[Tuple[Hashable, ...]] = (
            origin, tuple(sorted((proxies or {}).items())), stream, verify, cert,
        )
        try:
            hash(key)
        except TypeError:  # an unhashable cert/verify value: no caching
            key = None
        if key is None or origin == "<invalid URL>":
            return dict(super().merge_environment_settings(url, dict(proxies or {}), stream,
                                                           verify, cert))
        with self._env_lock:
            cached = self._env_cache.get(key)
        if cached is None:
            cached = dict(super().merge_environment_settings(url, dict(proxies or {}), stream,
                                                             verify, cert))
            with self._env_lock:
                if len(self._env_cache) >= _ENV_CACHE_SIZE:
                    self._env_cache.clear()
                self._env_cache[key] = cached
        merged = dict(cached)
        merged["proxies"] = dict(merged.get("proxies") or {})
        return merged


class OriginSession(EnvOnceSession):
    """A session whose redirects never carry credentials to another origin.

    ``origin`` is the server's; ``credential_headers`` the lower-case names of the headers
    that carry credentials; ``follow_foreign`` says whether a redirect to another origin is
    followed without them (file downloads) or refused (API calls).
    """

    def __init__(self, origin: str, credential_headers: FrozenSet[str],
                 follow_foreign: bool) -> None:
        super().__init__()
        self.origin = origin
        self.credential_headers = credential_headers
        self.follow_foreign = follow_foreign

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        """Called by ``requests`` for every redirect hop, after the new URL is set and
        before it is sent. Replaces ``requests``' own rule (strip ``Authorization`` when the
        host changes, add ``~/.netrc`` credentials of the new host)."""
        target = origin_of(prepared_request.url or "")
        if target == self.origin:
            return
        if not self.follow_foreign:
            response.close()
            raise ForeignRedirect(self.origin, target)
        for name in list(prepared_request.headers):
            if name.lower() in self.credential_headers:
                del prepared_request.headers[name]


class SessionSet:
    """The three sessions of one transport, sharing one connection adapter.

    ``api``: credentials, foreign redirects refused; ``files``: credentials, foreign
    redirects followed anonymously; ``anonymous``: no credentials at all, for a file whose
    URL is on another origin from the start.
    """

    def __init__(self, settings: ConnectionSettings, user_agent: str) -> None:
        self.adapter = MethodRouter(settings.retries)
        names = settings.credential_header_names
        self.api = self._session(settings, user_agent, OriginSession(settings.origin, names,
                                                                      False), True)
        self.files = self._session(settings, user_agent, OriginSession(settings.origin, names,
                                                                        True), True)
        self.anonymous = self._session(settings, user_agent, EnvOnceSession(), False)

    def _session(self, settings: ConnectionSettings, user_agent: str,
                 session: requests.Session, credentials: bool) -> requests.Session:
        session.mount("http://", self.adapter)
        session.mount("https://", self.adapter)
        session.verify = settings.verify
        session.headers["User-Agent"] = user_agent
        if credentials:
            session.headers.update(dict(settings.headers))
            if settings.authorization is not None:
                session.auth = _AuthorizationHeader(settings.authorization)
            else:
                # ``~/.netrc`` credentials of the server's host, looked up once here
                # (``requests`` would look for the file again on every request).
                netrc = requests.utils.get_netrc_auth(settings.origin)
                session.auth = requests.auth.HTTPBasicAuth(*netrc) if netrc else _NoAuth()
        else:
            # Without an auth, ``requests`` would add ``~/.netrc`` credentials of the host.
            session.auth = _NoAuth()
        return session

    def pick(self, foreign_ok: bool, same_origin: bool) -> requests.Session:
        """The session for a request: ``foreign_ok`` for file downloads, ``same_origin``
        false when the URL itself is on another origin."""
        if not same_origin:
            return self.anonymous
        return self.files if foreign_ok else self.api

    def close(self) -> None:
        for session in (self.api, self.files, self.anonymous):
            session.close()

