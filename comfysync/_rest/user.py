"""REST routes for per-user state and the jobs API: users, settings, user data files, jobs.

Users, settings and ``/userdata`` are what the ComfyUI frontend stores per user (saved
workflows live in ``userdata/workflows/``). The jobs API (``/api/jobs``) is newer than
ComfyUI v0.3.64; on a server without it the 404/405 is turned into an error that says so and
names the older routes that do the same.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, TypeVar, Union

from ..errors import ComfyHTTPError
from .base import RestBase, as_dict, as_list, as_str, id_list, segment

__all__ = ["UserRoutes"]

T = TypeVar("T")


def _cancelled(data: Any) -> bool:
    return bool(as_dict(data)["cancelled"])


class UserRoutes(RestBase):
    """Users, settings, user data files and the jobs API."""

    # -- users and settings ------------------------------------------------------------------

    def get_users(self) -> Dict[str, Any]:
        """``GET /users``: ``{"storage", "migrated"}`` or, with ``--multi-user``, ``users``."""
        return self._call("GET", "/users", as_dict)

    def create_user(self, username: str) -> str:
        """``POST /users``: create a user called ``username``; returns the new user id."""
        return self._call("POST", "/users", as_str, json={"username": username})

    def get_settings(self) -> Dict[str, Any]:
        """``GET /settings``: every stored setting."""
        return self._call("GET", "/settings", as_dict)

    def get_setting(self, id: str) -> Any:
        """``GET /settings/{id}``: the value of setting ``id``, ``None`` when unset."""
        return self._json("GET", f"/settings/{segment(id)}")

    def store_settings(self, settings: Mapping[str, Any]) -> None:
        """``POST /settings``: merge ``settings`` (id → JSON value) into the stored ones."""
        self._transport.request("POST", "/settings", json=dict(settings))

    def store_setting(self, id: str, value: Any) -> None:
        """``POST /settings/{id}``: set setting ``id`` to ``value`` (any JSON value)."""
        self._transport.request("POST", f"/settings/{segment(id)}", json=value)

    # -- user data ---------------------------------------------------------------------------

    def get_user_data(self, file: str) -> bytes:
        """``GET /userdata/{file}``: the raw bytes of the user file ``file`` (a path relative
        to the user directory, e.g. ``"workflows/x.json"``)."""
        return self._transport.request("GET", f"/userdata/{segment(file)}").content

    def store_user_data(
        self, file: str, data: Any, *, overwrite: bool = True, full_info: bool = False
    ) -> Any:
        """``POST /userdata/{file}``: store ``data`` (bytes, text, or any JSON value, which is
        encoded) as the user file ``file``. Returns the stored path (or, with ``full_info``,
        path/size/times). With ``overwrite`` false an existing file is a 409 error."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        elif isinstance(data, str):
            payload = data.encode("utf-8")
        else:
            payload = json.dumps(data).encode("utf-8")
        params = {"overwrite": None if overwrite else False, "full_info": full_info or None}
        return self._json("POST", f"/userdata/{segment(file)}", params=params, data=payload)

    def delete_user_data(self, file: str) -> None:
        """``DELETE /userdata/{file}``: remove the user file ``file`` (404 when missing)."""
        self._transport.request("DELETE", f"/userdata/{segment(file)}")

    def move_user_data(
        self, src: str, dest: str, *, overwrite: bool = False, full_info: bool = False
    ) -> Any:
        """``POST /userdata/{src}/move/{dest}``: rename the user file ``src`` to ``dest``;
        returns the new path (or, with ``full_info``, path/size/times). Refuses (409) to
        replace an existing ``dest`` unless ``overwrite`` is true."""
        path = f"/userdata/{segment(src)}/move/{segment(dest)}"
        params = {"overwrite": bool(overwrite), "full_info": full_info or None}
        return self._json("POST", path, params=params)

    def list_user_data(
        self, dir: str, *, recurse: bool = False, full_info: bool = False, split: bool = False
    ) -> List[Any]:
        """``GET /userdata?dir=``: files (not directories) under ``dir``, relative to it.
        ``recurse`` includes subdirectories; ``full_info`` gives ``{"path", "size",
        "modified", "created"}`` dicts instead of names; ``split`` gives each file as
        ``[path, *path parts]`` (ignored with ``full_info``)."""
        params = {"dir": dir, "recurse": recurse or None, "full_info": full_info or None,
                  "split": split or None}
        return self._call("GET", "/userdata", as_list, params=params)

    # -- jobs API (newer servers) ------------------------------------------------------------

    def _jobs_call(self, method: str, path: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        """:meth:`_call` for a jobs route; a server without the jobs API gets an error that
        says so (a 404 about a missing *job* carries an ``error`` body and stays as it is)."""
        try:
            return self._call(method, path, parse, **kwargs)
        except ComfyHTTPError as exc:
            job_missing = isinstance(exc.body, Mapping) and "error" in exc.body
            if exc.status in (404, 405) and not job_missing:
                raise ComfyHTTPError(
                    exc.status, exc.url, exc.body, method=exc.method,
                    message=(
                        f"{exc.method} {exc.url} failed with HTTP {exc.status}: this server "
                        "has no jobs API (/api/jobs, added after ComfyUI v0.3.64); use "
                        "get_queue()/get_history() or delete_from_queue()/interrupt() instead"
                    ),
                ) from None
            raise

    def get_jobs(
        self,
        status: Union[None, str, Iterable[str]] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        *,
        workflow_id: Optional[str] = None,
        sort_by: Optional[str] = None,
        sort_order: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``GET /api/jobs``: ``{"jobs": [...], "pagination": {...}}``. ``status`` is one of
        or a list of ``pending``, ``in_progress``, ``completed``, ``failed``; ``limit`` and
        ``offset`` page through the result; ``workflow_id`` keeps the jobs of one UI
        workflow (its ``extra_pnginfo.workflow.id``); ``sort_by`` (``created_at`` or
        ``execution_duration``) and ``sort_order`` (``asc``/``desc``) order them. Options left
        at ``None`` use the server's defaults."""
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        params = {"status": status, "limit": limit, "offset": offset,
                  "workflow_id": workflow_id, "sort_by": sort_by, "sort_order": sort_order}
        return self._jobs_call("GET", "/api/jobs", as_dict, params=params)

    def get_job(self, prompt_id: str) -> Dict[str, Any]:
        """``GET /api/jobs/{id}``: the job of ``prompt_id`` with its outputs and status."""
        return self._jobs_call("GET", f"/api/jobs/{segment(prompt_id)}", as_dict)

    def cancel_jobs(self, prompt_ids: Union[str, Iterable[str]]) -> bool:
        """``POST /api/jobs/cancel``: dequeue pending / interrupt running jobs among
        ``prompt_ids`` (one id or several), atomically on the server. Returns the server's
        ``cancelled`` flag."""
        return self._jobs_call("POST", "/api/jobs/cancel", _cancelled,
                               json={"job_ids": id_list(prompt_ids)})

    def cancel_job(self, prompt_id: str) -> bool:
        """``POST /api/jobs/{id}/cancel``: cancel the job of ``prompt_id`` (idempotent).
        Returns the server's ``cancelled`` flag."""
        return self._jobs_call("POST", f"/api/jobs/{segment(prompt_id)}/cancel", _cancelled)
