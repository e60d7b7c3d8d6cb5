"""Which surface a server speaks, decided once: :class:`SurfaceChoice`.

``ComfyApi(url, surface=...)`` talks to one of two surfaces:

* ``"native"``: ComfyUI's own routes (``/prompt``, ``/queue``, ``/history``, ``/ws``…);
* ``"v2"``: the Comfy API v2 (``/api/v2/jobs``, ``/api/v2/assets``): Comfy Cloud, serverless
  deployments, and comfy-api-proxy in front of a self-hosted ComfyUI.

``"auto"`` (the default) recognises the addresses of Comfy's hosted deployments
(``cloud.comfy.org``, ``*.run.comfy.app``) without a request; for any other address the server
is asked once, at first use: a native route first (a server offering both is driven natively,
which offers more), then the v2 health route. The answer is kept for the client's life.

On a v2 surface the native routes do not exist: :meth:`SurfaceChoice.check_route` refuses them
with an :class:`~comfysync.UnsupportedError` that names the surface and what to use instead,
before anything is sent.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Tuple

from ..errors import ComfyConnectionError, ComfyError, ComfyHTTPError, UnsupportedError

__all__ = ["SURFACES", "SurfaceChoice", "is_hosted_v2", "native_only_advice"]

log = logging.getLogger("comfysync.v2")

SURFACES = ("auto", "native", "v2")

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
        native_error: Optional[ComfyError] = None
        try:
            if self._probe_native():
                return "native"
        except ComfyHTTPError:
            pass
        except ComfyError as exc:  # unreachable: the v2 probe will say the same, or not
            native_error = exc
        try:
            if self._probe_v2():
                return "v2"
        except ComfyHTTPError:
            pass
        except ComfyError:
            if native_error is not None:
                raise native_error from None
            raise
        raise ComfyConnectionError(
            "the server answers neither the native ComfyUI routes (GET /prompt) nor the Comfy "
            "API v2 (GET /api/v2/health): check the URL, or pass surface='native' / "
            "surface='v2'"
        )

    def check_route(self, method: str, path: str) -> None:
        """Refuse a native route when the surface is v2 (the probe's own requests pass)."""
        if path.startswith("/api/v2/") or self._resolving is threading.current_thread():
            return
        if self.resolve() == "v2":
            raise UnsupportedError(
                f"{method} {path} is a native ComfyUI route, and this client talks to a "
                f"Comfy API v2 deployment (surface 'v2'): {native_only_advice(path)}",
                surface="v2", operation=f"{method} {path}",
            )
