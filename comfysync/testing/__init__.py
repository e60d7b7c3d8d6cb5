"""``comfysync.testing``: FakeComfyUI, an in-process ComfyUI server for tests (needs the
``testing`` extra: aiohttp + Pillow).

``FakeComfyUI`` speaks the real server's HTTP + WebSocket protocol on 127.0.0.1; node classes
written for it use ComfyUI's shape and report progress with :class:`ProgressBar`. Enable the
pytest fixture ``comfy_server`` with ``pytest_plugins = ["comfysync.testing.pytest_plugin"]``.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401  (the server; checked first for a clear message)
except ImportError as exc:
    raise ImportError(
        f"comfysync.testing needs the 'testing' extra ({exc.name or 'aiohttp'} is missing): "
        'pip install "comfysync[testing]"',
        name=exc.name,
    ) from exc

from ._context import ExecutionContext, NodeInterrupted, ProgressBar, current_context
from ._server import FakeComfyUI

__all__ = [
    "FakeComfyUI",
    "ProgressBar",
    "NodeInterrupted",
    "current_context",
    "ExecutionContext",
]
