"""What every group of REST routes shares: the transport seam and answer checking.

The REST half of :class:`~comfysync.ComfyApi` is composed of mixins, one per group of routes
(:mod:`comfysync._rest.methods` for prompts, the queue and history, :mod:`comfysync._rest.server`,
:mod:`comfysync._rest.files`, :mod:`comfysync._rest.user`). Each derives from
:class:`RestBase`, which needs only ``self._transport`` and ``self.client_id`` from the class
they end up in, and turns an answer whose shape a model cannot read into a
:class:`~comfysync.ComfyHTTPError` naming the URL, so no route leaks a ``KeyError`` or
``TypeError`` from parsing.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, TypeVar, Union
from urllib.parse import quote

from .._http.transport import HttpTransport
from ..errors import ComfyHTTPError

__all__ = ["RestBase", "as_dict", "as_list", "as_str", "as_str_list", "id_list", "segment"]

T = TypeVar("T")


class RestBase:
    """The transport seam of the REST mixins: JSON calls and checked parsing of answers."""

    _transport: HttpTransport
    client_id: str

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer of one request (keyword arguments as for
        :meth:`HttpTransport.request`)."""
        return self._transport.request_json(method, path, **kwargs)

    def _parse(self, parse: Callable[[Any], T], data: Any, method: str, path: str) -> T:
        """Apply a model parser; a shape it cannot read becomes a :class:`ComfyHTTPError`."""
        try:
            return parse(data)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            url = self._transport.url(path)
            raise ComfyHTTPError(
                200, url, data, method=method,
                message=f"{method} {url}: unexpected answer from the server ({exc})",
            ) from None

    def _call(self, method: str, path: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        """:meth:`_json`, then :meth:`_parse` of the answer with ``parse``."""
        return self._parse(parse, self._json(method, path, **kwargs), method, path)


def segment(value: str) -> str:
    """One URL path segment: every ``/`` and reserved character percent-encoded, so an id or
    file name can never reach another route. ``None`` or an empty value is refused
    (``ValueError``): ``/history/None`` would silently ask for a prompt called "None"."""
    if value is None or (isinstance(value, str) and not value):
        raise ValueError(f"expected a non-empty id or name, got {value!r}")
    return quote(str(value), safe="")


def id_list(prompt_ids: Union[str, Iterable[str]]) -> List[str]:
    """One prompt id or several, as the list the server's ``delete``/``job_ids`` fields take."""
    if isinstance(prompt_ids, str):
        return [prompt_ids]
    return [str(p) for p in prompt_ids]


def as_dict(data: Any) -> Dict[str, Any]:
    """Parser for answers that must be a JSON object."""
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return dict(data)


def as_list(data: Any) -> List[Any]:
    """Parser for answers that must be a JSON array."""
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON array, got {type(data).__name__}")
    return list(data)


def as_str_list(data: Any) -> List[str]:
    """Parser for answers that must be a JSON array of names."""
    return [str(x) for x in as_list(data)]


def as_str(data: Any) -> str:
    """Parser for answers that must be a JSON string."""
    if not isinstance(data, str):
        raise TypeError(f"expected a JSON string, got {type(data).__name__}")
    return data
