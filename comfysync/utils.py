"""Small helpers kept for compatibility with the comfy-api-client shape
(``from comfysync import utils``; ``utils.read_json("workflow.json")``)."""

from __future__ import annotations

import os
from typing import Any, Union

from ._workflow.format import read_json_file

__all__ = ["read_json"]


def read_json(path: Union[str, os.PathLike[str]]) -> Any:
    """Parse a JSON file (UTF-8, a BOM tolerated): e.g. a workflow exported in API format.
    A missing or malformed file raises :class:`~comfysync.errors.WorkflowFormatError`."""
    return read_json_file(path)
