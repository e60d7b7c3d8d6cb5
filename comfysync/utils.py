"""Small helpers kept for compatibility with the comfy-api-client shape
(``from comfysync import utils``; ``utils.read_json("workflow.json")``)."""

from __future__ import annotations

import json
import os
from typing import Any, Union

__all__ = ["read_json"]


def read_json(path: Union[str, os.PathLike[str]]) -> Any:
    """Parse a JSON file (UTF-8, a BOM tolerated): e.g. a workflow exported in API format."""
    with open(path, encoding="utf-8-sig") as fh:
        return json.load(fh)
