"""Small helpers kept for compatibility with the comfy-api-client shape
(``from comfysync import utils``; ``utils.read_json("workflow.json")``); they live in
``comfysync._compat`` with the rest of that shape."""

from __future__ import annotations

from ._compat import read_json

__all__ = ["read_json"]
