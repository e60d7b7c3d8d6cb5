"""Which prompt an id-less frame belongs to: :class:`Attribution`, the one rule.

Some frames carry no prompt id: type-1 binary previews (servers without preview metadata),
``executing`` repeated without its prompt id after a reconnect mid-run, ``progress_text`` from
older servers. The server runs one prompt at a time, so such a frame belongs to the prompt
(and node) that the last frame with ids named. This module keeps that "current prompt and
node" and fills the ids in; the tracker calls it for every event before anything else sees the
event, so prompt tracking, ``job.on`` callbacks and the user's ``api.on`` callbacks all see the
same, attributed event.
"""

from __future__ import annotations

from typing import Optional

import attrs

from .. import events as ev

__all__ = ["Attribution"]


class Attribution:
    """The current prompt and node of one client's socket. Not thread-safe: the tracker calls
    it under its lock."""

    def __init__(self) -> None:
        self.prompt_id: Optional[str] = None
        self.node: Optional[str] = None

    def attribute(self, event: ev.Event) -> ev.Event:
        """``event`` with the current prompt (and node) filled in where it has none; updates
        the current prompt and node from the frames that name them."""
        if isinstance(event, (ev.ExecutionStart, ev.ExecutionCached)):
            if event.prompt_id is not None:
                if event.prompt_id != self.prompt_id:
                    self.node = None
                self.prompt_id = event.prompt_id
            return event
        if isinstance(event, ev.Executing):
            if event.prompt_id is None and self.prompt_id is not None:
                event = attrs.evolve(event, prompt_id=self.prompt_id)
            if event.node is None:  # the prompt ended
                self.prompt_id = self.node = None
            else:
                self.prompt_id = event.prompt_id or self.prompt_id
                self.node = event.node
            return event
        if isinstance(event, ev.Progress):
            self.prompt_id = event.prompt_id or self.prompt_id
            self.node = event.node or self.node
            if event.prompt_id is None and self.prompt_id is not None:
                event = attrs.evolve(event, prompt_id=self.prompt_id)
            return event
        if isinstance(event, ev.Preview):
            if event.prompt_id is None and (self.prompt_id is not None or self.node is not None):
                return attrs.evolve(
                    event, prompt_id=self.prompt_id, node_id=event.node_id or self.node
                )
            return event
        if isinstance(event, ev.ProgressText):
            if (
                event.prompt_id is None
                and self.prompt_id is not None
                and event.node_id in (None, self.node)
            ):
                return attrs.evolve(event, prompt_id=self.prompt_id)
            return event
        return event

    def forget(self, prompt_id: str) -> None:
        """The prompt ended (perhaps learnt over HTTP): it is no longer the current one."""
        if self.prompt_id == prompt_id:
            self.prompt_id = self.node = None
