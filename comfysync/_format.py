"""Reading workflow files and telling the two workflow formats apart.

Shared by the REST layer (which refuses the UI format before anything is sent) and the
workflow layer (which converts it), so both read files and recognise formats the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Union

from .errors import WorkflowFormatError

__all__ = ["is_ui_format", "read_json_file"]


def is_ui_format(data: Any) -> bool:
    """True for an editor save file (a ``nodes`` list, usually with ``links``); False for an
    API-format prompt, whose values are node dicts keyed by node id."""
    return isinstance(data, Mapping) and isinstance(data.get("nodes"), list)


def read_json_file(path: Union[str, os.PathLike[str]]) -> Any:
    """Parse a JSON file (UTF-8, a BOM tolerated). Every failure — missing file, unreadable,
    not UTF-8, not JSON — is a :class:`WorkflowFormatError` naming the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise WorkflowFormatError(f"workflow file not found: {name}") from None
    except OSError as exc:
        raise WorkflowFormatError(f"cannot read workflow file {name}: {exc.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise WorkflowFormatError(f"{name} is not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise WorkflowFormatError(f"{name} is not valid JSON: {exc}") from None
