"""REST routes that describe the server: system stats, models, node definitions, logs, health.

Read-only questions about what the server is and offers (plus ``/free``, which acts on its
memory). Node definitions come from ``/object_info``; the checkpoint, LoRA and sampler lists
are read from the combo inputs of the stock loader/sampler nodes, which is how ComfyUI's own
frontend learns them.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from .._suggest import did_you_mean
from ..errors import ComfyHTTPError
from .base import RestBase, as_dict, as_str, as_str_list, segment
from .models import NodeDef, SamplerInfo, SystemStats

__all__ = ["ServerRoutes"]


class ServerRoutes(RestBase):
    """Server information, model lists, node definitions, memory, logs and ping."""

    # -- memory and system -------------------------------------------------------------------

    def free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """``POST /free``: ``unload_models`` unloads every model from memory, ``free_memory``
        also drops the execution caches. The server applies it when the worker is idle."""
        self._transport.request(
            "POST", "/free",
            json={"unload_models": bool(unload_models), "free_memory": bool(free_memory)},
        )

    def get_system_stats(self) -> SystemStats:
        """``GET /system_stats``: versions, RAM, devices."""
        return self._call("GET", "/system_stats", SystemStats.from_wire)

    def get_features(self) -> Dict[str, Any]:
        """``GET /features``: the server's feature flags (e.g. ``max_upload_size``)."""
        return self._call("GET", "/features", as_dict)

    def get_embeddings(self) -> List[str]:
        """``GET /embeddings``: embedding names without extension."""
        return self._call("GET", "/embeddings", as_str_list)

    def get_extensions(self) -> List[str]:
        """``GET /extensions``: URL paths of the frontend extension scripts."""
        return self._call("GET", "/extensions", as_str_list)

    def get_model_folders(self) -> List[str]:
        """``GET /models``: model folder names (``checkpoints``, ``loras``, …)."""
        return self._call("GET", "/models", as_str_list)

    def get_models(self, folder: str) -> List[str]:
        """``GET /models/{folder}``: file names in the model folder ``folder`` (one of
        :meth:`get_model_folders`); an unknown folder is a 404
        :class:`~comfysync.ComfyHTTPError` whose message lists the valid folders (and the
        likely intended one: ``"checkpoint"`` → ``"checkpoints"``)."""
        try:
            return self._call("GET", f"/models/{segment(folder)}", as_str_list)
        except ComfyHTTPError as exc:
            if exc.status != 404:
                raise
            try:
                folders = self.get_model_folders()
            except ComfyHTTPError:
                raise exc from None
            if folder in folders:
                raise
            raise ComfyHTTPError(
                exc.status, exc.url, exc.body, method=exc.method,
                message=f"the server has no model folder {folder!r}{did_you_mean(folder, folders)}"
                f"; its folders: {', '.join(sorted(folders)) or '(none)'}",
            ) from None

    def get_logs(self) -> str:
        """``GET /internal/logs``: the server's recent log output as one string."""
        return self._call("GET", "/internal/logs", as_str)

    def ping(self) -> float:
        """Round-trip seconds of ``GET /prompt``; raises when the server is unreachable."""
        started = time.monotonic()
        self._json("GET", "/prompt")
        return time.monotonic() - started

    # -- node definitions --------------------------------------------------------------------

    def get_node_defs(self, node_class: Optional[str] = None) -> Dict[str, NodeDef]:
        """``GET /object_info[/{class}]``: class name → :class:`NodeDef`, for every class or,
        with ``node_class``, for that one only (the dict is empty when the server does not
        know it)."""
        path = "/object_info" if node_class is None else f"/object_info/{segment(node_class)}"

        def parse(d: Any) -> Dict[str, NodeDef]:
            return {str(k): NodeDef.from_wire(str(k), v) for k, v in (d or {}).items()}

        return self._call("GET", path, parse)

    def get_node_def(self, node_class: str) -> Optional[NodeDef]:
        """The definition of the node class ``node_class``, or ``None`` when the server does
        not know it."""
        return self.get_node_defs(node_class).get(node_class)

    def _combo(self, node_class: str, input_name: str) -> List[str]:
        node = self.get_node_def(node_class)
        options = node.combo_options(input_name) if node is not None else None
        return [str(o) for o in options or []]

    def get_checkpoints(self) -> List[str]:
        """Checkpoint names, as ``CheckpointLoaderSimple`` offers them."""
        return self._combo("CheckpointLoaderSimple", "ckpt_name")

    def get_loras(self) -> List[str]:
        """LoRA names, as ``LoraLoader`` offers them."""
        return self._combo("LoraLoader", "lora_name")

    def get_sampler_info(self) -> SamplerInfo:
        """Sampler and scheduler names, as ``KSampler`` offers them (empty lists when the
        server has no ``KSampler``)."""
        node = self.get_node_def("KSampler")
        return SamplerInfo.from_node_def(node) if node is not None else SamplerInfo()
