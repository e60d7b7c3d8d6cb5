"""FakeComfyUI's log buffer: what ``/internal/logs`` shows and ``logs`` subscribers receive.

The real server keeps the last lines of its terminal output and pushes each new line to the
clients that subscribed with ``PATCH /internal/logs/subscribe``; the executor writes the same
lines here ("got prompt", "Prompt executed in …", exceptions).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set

if TYPE_CHECKING:
    from ._hub import Hub

#: lines kept, as the real server's ring buffer
LOG_LIMIT = 300


class LogBuffer:
    """The last :data:`LOG_LIMIT` lines, and the client ids subscribed to new ones.
    ``hub()`` is the server's socket hub while it runs (``None`` otherwise)."""

    def __init__(self, hub: Callable[[], Optional[Hub]]) -> None:
        self._hub = hub
        self._lock = threading.Lock()
        self._entries: List[Dict[str, str]] = []
        self._subscribers: Set[str] = set()

    def line(self, text: str) -> None:
        """Append a line (and send it to the ``logs`` subscribers)."""
        entry = {"t": datetime.now().isoformat(), "m": text if text.endswith("\n") else text + "\n"}
        with self._lock:
            self._entries.append(entry)
            del self._entries[:-LOG_LIMIT]
            subscribers = list(self._subscribers)
        hub = self._hub()
        if hub is not None:
            for sid in subscribers:
                hub.send_sync("logs", {"entries": [entry], "size": None}, sid)

    def entries(self) -> List[Dict[str, str]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def subscribe(self, client_id: str, enabled: bool) -> None:
        with self._lock:
            if enabled:
                self._subscribers.add(client_id)
            else:
                self._subscribers.discard(client_id)
