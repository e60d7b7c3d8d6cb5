"""FakeComfyUI's core routes: prompt, queue, history, interrupt, free, discovery, internal.

Each handler reproduces the real handler's observable behaviour: status codes,
bodies and the empty ``200`` answers of mutating routes. Malformed input is left to raise, so
the error middleware answers with the real plain-text ``500``.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, List, Tuple

from aiohttp import web

if TYPE_CHECKING:
    from ._state import ServerState

Route = Tuple[str, str, Callable[[web.Request], Any]]

COMFYUI_VERSION = "0.3.64"
_FAKE_RAM = 17179869184

INDEX_HTML = (
    "<!DOCTYPE html><html><head><title>ComfyUI</title></head>"
    "<body><p>FakeComfyUI (comfysync.testing): no frontend is served.</p></body></html>"
)


def _empty() -> web.Response:
    """The body-less ``200`` of many mutating routes (no Content-Type)."""
    return web.Response(status=200)


class CoreRoutes:
    """The core handlers, over the server's shared state."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def routes(self) -> List[Route]:
        return [
            ("GET", "/", self.index),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_folder),
            ("GET", "/extensions", self.extensions),
            ("GET", "/workflow_templates", self.empty_object),
            ("GET", "/i18n", self.empty_object),
        ]

    def internal_routes(self) -> List[Route]:
        """Only under ``/internal`` (no ``/api`` twin), plus the fake's own debug routes
        under ``/fake`` (a real server has none)."""
        return [
            ("GET", "/internal/logs", self.logs),
            ("GET", "/internal/logs/raw", self.logs_raw),
            ("PATCH", "/internal/logs/subscribe", self.logs_subscribe),
            ("GET", "/internal/folder_paths", self.folder_paths),
            ("GET", "/internal/files/{directory_type}", self.internal_files),
            ("GET", "/fake/executions", self.executions),
        ]

    # ------------------------------------------------------------------ prompts
    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            text=INDEX_HTML,
            content_type="text/html",
            headers={"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"},
        )

    async def post_prompt(self, request: web.Request) -> web.Response:
        state = self.state
        state.logs.line("got prompt")
        body = await request.json()
        if "number" in body:
            number: Any = float(body["number"])
        else:
            number = state.take_number()
            if "front" in body and body["front"]:
                number = -number
        if "prompt" not in body:
            error = {"type": "no_prompt", "message": "No prompt provided",
                     "details": "No prompt provided", "extra_info": {}}
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        _crash_like_comfyui(prompt)
        if state.jobs_api and "prompt_id" in body:
            given = body["prompt_id"]
            if not _canonical_uuid(given):
                error = {"type": "invalid_prompt_id",
                         "message": "prompt_id must be a canonical lowercase hyphenated UUID",
                         "details": str(given), "extra_info": {}}
                return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        targets = body.get("partial_execution_targets")
        result = state.validate(prompt, targets)
        extra_data = body.get("extra_data", {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if state.jobs_api:
            extra_data["create_time"] = int(datetime.now().timestamp() * 1000)
        if result.ok:
            state.queue.put([number, prompt_id, result.prompt, extra_data, list(result.outputs)])
            return web.json_response(
                {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
            )
        state.logs.line(f"invalid prompt: {result.error}")
        return web.json_response(
            {"error": result.error, "node_errors": result.node_errors}, status=400
        )

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": self.state.queue.remaining()}})

    # -------------------------------------------------------------------- queue
    async def get_queue(self, request: web.Request) -> web.Response:
        running, pending = self.state.queue.snapshot()
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "clear" in body and body["clear"]:
            self.state.queue.wipe()
        if "delete" in body:
            for prompt_id in body["delete"]:
                self.state.queue.delete(prompt_id)
        return _empty()

    # ------------------------------------------------------------------ history
    async def get_history(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(self.state.queue.history(max_items=max_items, offset=offset))

    async def get_history_one(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.queue.history(request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "clear" in body and body["clear"]:
            self.state.queue.wipe_history()
        if "delete" in body:
            for prompt_id in body["delete"]:
                self.state.queue.delete_history(prompt_id)
        return _empty()

    # --------------------------------------------------------- interrupt / free
    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        prompt_id = body.get("prompt_id")
        self.state.executor.interrupt(str(prompt_id) if prompt_id else None)
        return _empty()

    async def post_free(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("unload_models", False):
            self.state.queue.set_flag("unload_models", True)
        if body.get("free_memory", False):
            self.state.queue.set_flag("free_memory", True)
        return _empty()

    # ---------------------------------------------------------------- discovery
    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.registry.object_info())

    async def object_info_one(self, request: web.Request) -> web.Response:
        node_class = request.match_info["node_class"]
        if node_class not in self.state.registry:
            return web.json_response({})
        return web.json_response(self.state.registry.object_info(node_class))

    async def system_stats(self, request: web.Request) -> web.Response:
        device = {"name": "cpu", "type": "cpu", "index": None, "vram_total": _FAKE_RAM,
                  "vram_free": _FAKE_RAM, "torch_vram_total": _FAKE_RAM,
                  "torch_vram_free": _FAKE_RAM}
        system = {
            "os": os.name,
            "ram_total": _FAKE_RAM,
            "ram_free": _FAKE_RAM,
            "comfyui_version": COMFYUI_VERSION,
            "required_frontend_version": "1.27.10",
            "installed_templates_version": _templates_version(),
            "required_templates_version": "0.1.95",
            "python_version": sys.version,
            "pytorch_version": "fake (comfysync.testing)",
            "embedded_python": False,
            "argv": ["main.py", "--cpu", "--port", str(self.state.port),
                     "--preview-method", self.state.preview_method],
        }
        return web.json_response({"system": system, "devices": [device]})

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.feature_flags())

    async def embeddings(self, request: web.Request) -> web.Response:
        names = self.state.registry.models.get("embeddings", [])
        return web.json_response([os.path.splitext(n)[0] for n in names])

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.state.registry.models))

    async def models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.state.registry.models:
            return web.Response(status=404)
        return web.json_response(list(self.state.registry.models[folder]))

    async def extensions(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def empty_object(self, request: web.Request) -> web.Response:
        return web.json_response({})

    # ----------------------------------------------------------------- internal
    async def logs(self, request: web.Request) -> web.Response:
        text = "".join(f"{e['t']} - {e['m']}" for e in self.state.logs.entries())
        return web.json_response(text)

    async def logs_raw(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"entries": self.state.logs.entries(), "size": {"cols": 80, "rows": 24}}
        )

    async def logs_subscribe(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state.logs.subscribe(str(body["clientId"]), bool(body["enabled"]))
        return _empty()

    async def folder_paths(self, request: web.Request) -> web.Response:
        root = self.state.dirs.models
        return web.json_response({name: [str(root / name)] for name in self.state.registry.models})

    async def internal_files(self, request: web.Request) -> web.Response:
        base = self.state.dirs.by_type(request.match_info["directory_type"])
        if base is None:
            return web.json_response({"error": "Invalid directory type"}, status=400)
        files = [e for e in os.scandir(base) if e.is_file()]
        files.sort(key=lambda e: e.stat().st_mtime, reverse=True)
        return web.json_response([e.name for e in files])

    # ---------------------------------------------------------------- fake-only
    async def executions(self, request: web.Request) -> web.Response:
        """``{prompt_id: times executed}`` (``?prompt_id=`` for one): how tests in other
        processes prove that a prompt ran exactly once."""
        return web.json_response(self.state.executions(request.rel_url.query.get("prompt_id")))


def _templates_version() -> Any:
    """The installed ``comfyui-workflow-templates`` version, None when absent (as real)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return version("comfyui-workflow-templates")
    except PackageNotFoundError:
        return None


def _crash_like_comfyui(prompt: Any) -> None:
    """The real server's validation first tests ``"class_type" in prompt[x]`` for every node:
    for a node value that is not a container (e.g. a UI-format workflow's ``"version": 0.4``)
    that raises, and the client gets the plain-text 500 (observed)."""
    if not isinstance(prompt, dict):
        raise TypeError("prompt is not an object")
    for node_id, node in prompt.items():
        if not isinstance(node, (dict, list, str)):
            raise TypeError(f"node {node_id!r} is not an object")


def _canonical_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False

