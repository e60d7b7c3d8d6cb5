"""Reading the JSON shapes of server answers, for the models' ``from_wire`` parsers.

ComfyUI leaves out keys and sends ``null`` freely (custom nodes and newer servers do more of
both), so a missing object or array reads as empty; a value of the *wrong* shape raises
:class:`TypeError` naming what was being read, which the REST layer turns into a
:class:`~comfysync.ComfyHTTPError` for the route.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["ms_to_datetime", "wire_array", "wire_object"]


def wire_object(value: Any, what: str) -> Dict[str, Any]:
    """``value`` as a new dict: ``{}`` for ``None``, :class:`TypeError` (naming ``what``)
    for anything that is not a JSON object."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return dict(value)


def wire_array(value: Any, what: str) -> List[Any]:
    """``value`` as a new list: ``[]`` for ``None``, :class:`TypeError` (naming ``what``) for
    anything that is not a JSON array (a string is not one)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{what}: expected a JSON array, got {type(value).__name__}")
    return list(value)


def ms_to_datetime(value: Any) -> Optional[datetime]:
    """A server timestamp in milliseconds since the epoch as an aware UTC datetime; ``None``
    for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
