"""A snapshot of a job's progress: :class:`JobProgress` (built by the tracker's per-prompt
record, read through ``job.progress``)."""

from __future__ import annotations

from typing import Mapping, Optional

from attrs import define, field

from .. import events as ev

__all__ = ["JobProgress"]


@define(frozen=True)
class JobProgress:
    """A snapshot of a job's progress.

    ``node``/``value``/``max``: the node running now and its progress bar; ``nodes_done`` of
    ``nodes_total`` nodes are finished or served from cache; ``nodes`` the server's
    per-node ``progress_state``; ``preview`` the last preview of this prompt.
    """

    node: Optional[str] = None
    value: float = 0.0
    max: float = 0.0
    nodes_done: int = 0
    nodes_total: int = 0
    nodes: Mapping[str, ev.NodeProgress] = field(factory=dict)
    preview: Optional[ev.Preview] = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]: finished nodes plus the running node's share."""
        if self.nodes_total <= 0:
            return 0.0
        part = self.value / self.max if self.node is not None and self.max > 0 else 0.0
        return max(0.0, min(1.0, (self.nodes_done + min(part, 1.0)) / self.nodes_total))
