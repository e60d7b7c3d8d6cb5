"""The newer ``/api/jobs`` routes of ComfyUI after v0.3.64, served when
``FakeComfyUI(jobs_api=True)``.

A job is a queue item or a history entry seen through one uniform dict (id, status,
priority, times, error, output summary). v0.3.64 has no such routes, so the option is off by
default and the SDK can be tested against both kinds of server.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from aiohttp import web

from ._queue import PromptQueue

if TYPE_CHECKING:
    from ._routes import Route

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
_PREVIEWABLE = ("images", "video", "audio", "3d", "text")


def _prune(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _workflow_id(extra: Dict[str, Any]) -> Optional[str]:
    info = extra.get("extra_pnginfo") or {}
    workflow = info.get("workflow") if isinstance(info, dict) else None
    return workflow.get("id") if isinstance(workflow, dict) else None


def queue_job(item: List[Any], status: str) -> Dict[str, Any]:
    extra = item[3] if isinstance(item[3], dict) else {}
    return _prune({"id": item[1], "status": status, "priority": item[0],
                   "create_time": extra.get("create_time"), "outputs_count": 0,
                   "workflow_id": _workflow_id(extra)})


def _outputs_summary(outputs: Dict[str, Any]) -> Tuple[int, Optional[Dict[str, Any]]]:
    count = 0
    preview: Optional[Dict[str, Any]] = None
    fallback: Optional[Dict[str, Any]] = None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media, items in node_outputs.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for item in items:
                count += 1
                if media not in _PREVIEWABLE:
                    continue
                if isinstance(item, dict):
                    enriched = {**item, "nodeId": node_id,
                                "mediaType": item.get("mediaType", media)}
                    if item.get("type") == "output" and preview is None:
                        preview = enriched
                    elif fallback is None:
                        fallback = enriched
                elif media == "text" and fallback is None:
                    fallback = {"content": str(item)[:1024], "nodeId": node_id, "mediaType": media}
    return count, preview or fallback


def history_job(prompt_id: str, entry: Dict[str, Any], full: bool = False) -> Dict[str, Any]:
    number, _, prompt, extra, _ = entry["prompt"]
    status_info = entry.get("status") or {}
    start = end = None
    error = None
    interrupted = False
    for event, data in status_info.get("messages", []):
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            error = data if event == "execution_error" else error
            interrupted = interrupted or event == "execution_interrupted"
    if status_info.get("status_str") == "error":
        status = "cancelled" if interrupted else "failed"
    else:
        status = "completed"
    count, preview = _outputs_summary(entry.get("outputs", {}))
    job = _prune({"id": prompt_id, "status": status, "priority": number,
                  "create_time": extra.get("create_time"), "execution_start_time": start,
                  "execution_end_time": end, "execution_error": error, "outputs_count": count,
                  "preview_output": preview, "workflow_id": _workflow_id(extra)})
    if full:
        job["outputs"] = entry.get("outputs", {})
        job["execution_status"] = status_info
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


class JobRoutes:
    """The jobs view of the queue and history; ``interrupt(prompt_id)`` stops a running
    prompt (``POST /interrupt`` with that id)."""

    def __init__(self, queue: PromptQueue, interrupt: Callable[[Optional[str]], None]) -> None:
        self.queue = queue
        self.interrupt = interrupt

    def routes(self) -> List[Route]:
        return [
            ("GET", "/api/jobs", self.list_jobs),
            ("GET", "/api/jobs/{job_id}", self.get_job),
            ("POST", "/api/jobs/cancel", self.cancel_many),
            ("POST", "/api/jobs/{job_id}/cancel", self.cancel_one),
        ]

    def _all(self) -> List[Dict[str, Any]]:
        running, pending = self.queue.snapshot()
        jobs = [queue_job(i, "in_progress") for i in running]
        jobs += [queue_job(i, "pending") for i in pending]
        jobs += [history_job(k, v) for k, v in self.queue.history_items()]
        return jobs

    async def list_jobs(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        statuses = [s for s in query.get("status", "").split(",") if s] or list(STATUSES)
        bad = [s for s in statuses if s not in STATUSES]
        sort_by = query.get("sort_by", "created_at")
        order = query.get("sort_order", "desc")
        try:
            limit = int(query["limit"]) if "limit" in query else None
            offset = int(query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        if bad or sort_by not in ("created_at", "execution_duration") or \
                order not in ("asc", "desc") or (limit is not None and limit < 0) or offset < 0:
            return web.json_response({"error": "invalid query parameters"}, status=400)
        jobs = [j for j in self._all() if j["status"] in statuses]
        workflow_id = query.get("workflow_id")
        if workflow_id:
            jobs = [j for j in jobs if j.get("workflow_id") == workflow_id]
        if sort_by == "execution_duration":
            def key(j: Dict[str, Any]) -> float:
                s, e = j.get("execution_start_time"), j.get("execution_end_time")
                return float(e - s) if s and e else 0.0
        else:
            def key(j: Dict[str, Any]) -> float:
                return float(j.get("create_time", 0))
        jobs.sort(key=key, reverse=order == "desc")
        total = len(jobs)
        page = jobs[offset:]
        if limit is not None:
            page = page[:limit]
        return web.json_response({
            "jobs": page,
            "pagination": {"offset": offset, "limit": limit, "total": total,
                           "has_more": offset + len(page) < total},
        })

    async def get_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        found = self.queue.history(job_id)
        if job_id in found:
            return web.json_response(history_job(job_id, found[job_id], full=True))
        running, pending = self.queue.snapshot()
        for items, status in ((running, "in_progress"), (pending, "pending")):
            for item in items:
                if item[1] == job_id:
                    return web.json_response(queue_job(item, status))
        return web.json_response({"error": "Job not found"}, status=404)

    def _cancel(self, job_id: str) -> bool:
        if self.queue.delete(job_id):
            return True
        if self.queue.running_prompt_id() == job_id:
            self.interrupt(job_id)
            return True
        return False

    async def cancel_one(self, request: web.Request) -> web.Response:
        return web.json_response({"cancelled": self._cancel(request.match_info["job_id"])})

    async def cancel_many(self, request: web.Request) -> web.Response:
        body = await request.json()
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        invalid = [i for i in ids if not _is_uuid(i)]
        if invalid:
            return web.json_response(
                {"error": "job_ids must be UUIDs", "invalid_ids": invalid}, status=400
            )
        cancelled = [self._cancel(i) for i in ids]
        return web.json_response({"cancelled": any(cancelled)})
