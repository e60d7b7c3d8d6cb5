"""Which surface a server speaks, decided once: :class:`SurfaceChoice`.

``ComfyApi(url, surface=...)`` talks to one of two surfaces:

* ``"native"``: ComfyUI's own routes (``/prompt``, ``/queue``, ``/history``, ``/ws``…);
* ``"v2"``: the Comfy API v2 (``/api/v2/jobs``, ``/api/v2/assets``): Comfy Cloud, serverless
  deployments, and comfy-api-proxy in front of a self-hosted ComfyUI.

``"auto"`` (the default) recognises the addresses of Comfy's hosted deployments
(``cloud.comfy.org``, ``*.run.comfy.app``) without a request. For any other address nothing is
asked while native routes answer (the socket opening, a REST call succeeding, settles it);
when one answers 404, the server is asked once: the v2 health route (unauthenticated on every
v2 deployment), then, when it answers, whether the native routes are there too (a server
offering both is driven natively, which offers more). The answer is kept for the client's
life (a server that cannot be reached leaves the question open for the next call).

On a v2 surface the native routes do not exist: :meth:`SurfaceChoice.check_route` (before a
request) and :meth:`SurfaceChoice.route_missing` (after a 404) refuse them with an
:class:`~comfysync.UnsupportedError` that names the surface and what to use instead.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Optional, Tuple

from ..errors import ComfyError, ComfyHTTPError, UnsupportedError

__all__ = ["API_KEY_ENV", "SURFACES", "SurfaceChoice", "api_key_from_env", "is_hosted_v2",
           "native_only_advice"]

log = logging.getLogger("comfysync.v2")

SURFACES = ("auto", "native", "v2")

#: The environment variable holding the key of a Comfy API v2 deployment (as Comfy's SDKs).
API_KEY_ENV = "COMFY_API_KEY"


def api_key_from_env() -> Optional[str]:
    """``$COMFY_API_KEY`` when set and not blank, else None."""
    value = os.environ.get(API_KEY_ENV, "").strip()
    return value or None

#: Hosts (exact, or a suffix starting with ".") that serve only the Comfy API v2.
_HOSTED_V2: Tuple[str, ...] = ("cloud.comfy.org", ".run.comfy.app")

#: Native route prefix → what a v2 deployment offers instead.
_ADVICE: Tuple[Tuple[str, str], ...] = (
    ("/object_info", "node definitions are not served; to convert a UI-format workflow pass "
                     "node_defs= (e.g. from a native server's get_node_defs())"),
    ("/queue", "there is no shared queue to read or edit: follow your own jobs with "
               "api.submit(...) and job.status, stop one with job.cancel()"),
    ("/prompt", "submit with api.submit(...) or api.run_workflow(...)"),
    ("/history", "a job's outcome comes from job.wait() or api.run_workflow()"),
    ("/interrupt", "stop a job with job.cancel()"),
    ("/api/jobs", "follow your jobs with api.submit(...) and job.status"),
    ("/view", "read outputs with OutputFile.read() / save() of a result"),
    ("/upload/mask", "upload the masked image itself with api.upload_image()"),
    ("/userdata", "user data lives in the native UI only"),
    ("/settings", "settings live in the native UI only"),
    ("/users", "users live in the native UI only"),
)


def native_only_advice(path: str) -> str:
    """What to use on a v2 deployment instead of native route ``path``."""
    for prefix, advice in _ADVICE:
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
            return advice
    return "a Comfy API v2 deployment offers only jobs and assets"


def _v2_or_absolute(path: str) -> bool:
    """A v2 route, or an absolute URL (an output's content URL): never a native route."""
    return path.startswith("/api/v2/") or "://" in path


def is_hosted_v2(host: str) -> bool:
    """True for the address of a Comfy-hosted v2 deployment (Comfy Cloud, serverless)."""
    host = host.lower().rstrip(".")
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in _HOSTED_V2)


class SurfaceChoice:
    """The surface of one client: given (``"native"`` / ``"v2"``), recognised from the host,
    or learnt by :meth:`resolve` with ``probe_native`` and ``probe_v2`` (each True when the
    server answers that surface's route; raising ``ComfyError`` when it cannot be reached)."""

    def __init__(
        self,
        requested: str,
        host: str,
        *,
        probe_native: Callable[[], bool],
        probe_v2: Callable[[], bool],
    ) -> None:
        if requested not in SURFACES:
            raise ValueError(f"surface must be one of {SURFACES}, not {requested!r}")
        self.requested = requested
        self._probe_native = probe_native
        self._probe_v2 = probe_v2
        self._lock = threading.Lock()
        self._resolving: Optional[threading.Thread] = None
        self._kind: Optional[str] = None if requested == "auto" else requested
        if self._kind is None and is_hosted_v2(host):
            self._kind = "v2"

    @property
    def known(self) -> Optional[str]:
        """``"native"`` / ``"v2"`` once decided, else None (no request made)."""
        return self._kind

    def decide(self, kind: str) -> None:
        """Record what a successful exchange showed (e.g. the native socket opened)."""
        if self._kind is None:
            self._kind = kind

    def resolve(self) -> str:
        """The surface, asking the server the first time (``"auto"`` only)."""
        kind = self._kind
        if kind is not None:
            return kind
        with self._lock:
            if self._kind is None:
                self._resolving = threading.current_thread()
                try:
                    self._kind = self._ask()
                finally:
                    self._resolving = None
                log.info("the server speaks the %s surface", self._kind)
            return self._kind

    def _ask(self) -> str:
        """v2 when its health route answers and the native route does not (a server offering
        both is driven natively, which offers more); native otherwise. An unreachable server
        raises and leaves the question open."""
        try:
            if not self._probe_v2():
                return "native"
        except ComfyHTTPError:  # 404 on a native server, 401 behind an authenticating proxy
            return "native"
        try:
            if self._probe_native():
                return "native"
        except ComfyHTTPError:
            pass
        return "v2"

    def _refuse(self, method: str, path: str) -> UnsupportedError:
        return UnsupportedError(
            f"{method} {path} is a native ComfyUI route, and this client talks to a Comfy API "
            f"v2 deployment (surface 'v2'): {native_only_advice(path)}",
            surface="v2", operation=f"{method} {path}",
        )

    def check_route(self, method: str, path: str) -> None:
        """Before a request: refuse a native route on a known v2 surface."""
        if self._kind == "v2" and not _v2_or_absolute(path):
            raise self._refuse(method, path)

    def route_missing(self, method: str, path: str) -> None:
        """A native route answered 404 while the surface is unknown: ask which surface the
        server speaks (once) and refuse the route when it is v2. Native servers are never
        probed while their routes answer."""
        if _v2_or_absolute(path) or self._resolving is threading.current_thread():
            return
        if self._kind is None:
            try:
                self.resolve()
            except ComfyError:  # let the request fail with its own error
                return
        if self._kind == "v2":
            raise self._refuse(method, path)
