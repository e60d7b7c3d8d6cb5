"""One client, either surface: :class:`SurfaceSwitch`.

A client built with ``surface="auto"`` does not know at construction whether its server speaks
the native routes or the Comfy API v2, and asks only at first use. The switch is what prompt
tracking and result files are given meanwhile: a
:class:`~comfysync._tracking.surface.ServerSurface`, its event source and a file client in
one, each call handed to the native or the v2 implementation once
:class:`~comfysync._v2.choice.SurfaceChoice` has decided (the first call decides).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from .._rest.models import HistoryEntry
from .._results import FileClient
from .._tracking.surface import EventSource, PromptStatus, ServerSurface, Submitted
from .choice import SurfaceChoice

__all__ = ["SurfaceSwitch"]


class _SwitchEvents:
    """The event source of whichever surface the server speaks (nothing before it is known:
    not connected, so tracking polls)."""

    def __init__(self, switch: SurfaceSwitch) -> None:
        self._switch = switch

    def _known(self) -> Optional[EventSource]:
        kind = self._switch.choice.known
        if kind is None:
            return None
        return self._switch.surface_for(kind).events

    def start(self, timeout: float) -> None:
        self._switch.current.events.start(timeout)

    def stop(self) -> None:
        for surface in self._switch.built():
            surface.events.stop()

    @property
    def alive(self) -> bool:
        source = self._known()
        return source is not None and source.alive

    @property
    def connected(self) -> bool:
        source = self._known()
        return source is not None and source.connected

    @property
    def authoritative(self) -> bool:
        source = self._known()
        return source is not None and source.authoritative

    def owns_current_thread(self) -> bool:
        return any(s.events.owns_current_thread() for s in self._switch.built())


class SurfaceSwitch:
    """Native or v2, as ``choice`` decides. ``native`` and ``v2`` are the two surfaces,
    ``native_files`` / ``v2_files`` their file clients."""

    def __init__(
        self,
        choice: SurfaceChoice,
        *,
        native: ServerSurface,
        v2: ServerSurface,
        native_files: FileClient,
        v2_files: FileClient,
    ) -> None:
        self.choice = choice
        self._surfaces: Dict[str, ServerSurface] = {"native": native, "v2": v2}
        self._files: Dict[str, FileClient] = {"native": native_files, "v2": v2_files}
        self._used: Dict[str, bool] = {}
        self._lock = threading.Lock()
        self._events = _SwitchEvents(self)

    def surface_for(self, kind: str) -> ServerSurface:
        with self._lock:
            self._used[kind] = True
        return self._surfaces[kind]

    def built(self) -> Sequence[ServerSurface]:
        """The surfaces handed out so far (their event sources may run)."""
        with self._lock:
            return [self._surfaces[k] for k in self._used]

    @property
    def current(self) -> ServerSurface:
        return self.surface_for(self.choice.resolve())

    @property
    def files(self) -> FileClient:
        return self._files[self.choice.resolve()]

    # -- ServerSurface ---------------------------------------------------------------------

    @property
    def events(self) -> _SwitchEvents:
        return self._events

    def submit(
        self, prompt: Mapping[str, Any], prompt_id: str, options: Mapping[str, Any],
        deadline: Optional[float] = None,
    ) -> Submitted:
        return self.current.submit(prompt, prompt_id, options, deadline)

    def status(self, prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        return self.current.status(prompt_ids)

    def result(self, prompt_id: str) -> Optional[HistoryEntry]:
        return self.current.result(prompt_id)

    def cancel(self, prompt_id: str) -> None:
        self.current.cancel(prompt_id)

    # -- FileClient ------------------------------------------------------------------------

    def get_image(self, ref: Any) -> bytes:
        return self.files.get_image(ref)

    def download(self, ref: Any, dest: Any) -> Path:
        return self.files.download(ref, dest)

    def get_path_image(self, ref: Any) -> str:
        return self.files.get_path_image(ref)
