"""FakeComfyUI's prompt queue and history, with the real server's observable semantics.

The real queue is a binary min-heap on ``(number, prompt_id, …)`` shown *unsorted* by
``GET /queue``; one worker takes the smallest item; history is an insertion-ordered dict
written when the worker reports the prompt done. Clients see these details (heap order,
the double ``status`` when the last pending item is deleted, history appearing atomically as
the running item disappears), so they are reproduced here rather than idealised.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

log = logging.getLogger("comfysync.testing.queue")

#: ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``
QueueItem = List[Any]

MAX_HISTORY = 10000
#: extra_data keys removed from history (but, as in v0.3.64, still visible in /queue)
SENSITIVE_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class Taken:
    """What the worker got from :meth:`PromptQueue.get`."""

    def __init__(self, item: QueueItem, task_id: int, generation: int) -> None:
        self.item = item
        self.task_id = task_id
        self.generation = generation

    @property
    def prompt_id(self) -> str:
        return str(self.item[1])


class PromptQueue:
    """Pending heap, running items and history behind one lock.

    ``on_change`` is called (under the lock, so broadcasts keep the order of the changes)
    whenever the queue's size changes: it sends the WS ``status``. ``notify`` wakes anyone
    waiting on server state (it must not take other locks).
    """

    def __init__(self, on_change: Callable[[int], None], notify: Callable[[], None]) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._heap: List[Tuple[Any, str, int, QueueItem]] = []
        self._seq = itertools.count()
        self._running: Dict[int, QueueItem] = {}
        self._task_ids = itertools.count()
        self._history: OrderedDict[str, Dict[str, Any]] = OrderedDict()
        self._on_change = on_change
        self._notify = notify
        self._paused = False
        self._closed = False
        self._flags: Dict[str, Any] = {}
        self.generation = 0

    # ----------------------------------------------------------------- queue side
    def _changed(self) -> None:
        self._on_change(len(self._heap) + len(self._running))

    def put(self, item: QueueItem) -> None:
        with self._cond:
            heapq.heappush(self._heap, (item[0], str(item[1]), next(self._seq), item))
            self._changed()
            self._cond.notify_all()
        self._notify()

    def get(self, timeout: float) -> Optional[Taken]:
        """Worker side: wait (≤ timeout) for an item while not paused; mark it running."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._closed or self._flags or (self._heap and not self._paused),
                timeout,
            )
            if not ok or self._closed or self._flags:
                return None
            item = heapq.heappop(self._heap)[3]
            task_id = next(self._task_ids)
            self._running[task_id] = copy.deepcopy(item)
            self._changed()
            taken = Taken(item, task_id, self.generation)
        self._notify()
        return taken

    def task_done(self, taken: Taken, result: Dict[str, Any]) -> bool:
        """Move a running item into history (with ``result``: outputs, status, meta).
        Returns False (and writes nothing) when the queue was reset since it was taken."""
        with self._cond:
            if taken.generation != self.generation or taken.task_id not in self._running:
                return False
            item = self._running.pop(taken.task_id)
            extra = {k: v for k, v in item[3].items() if k not in SENSITIVE_KEYS}
            entry: Dict[str, Any] = {"prompt": [item[0], item[1], item[2], extra, item[4]]}
            entry["outputs"] = {}
            entry["status"] = None
            entry.update(result)
            if len(self._history) > MAX_HISTORY:
                self._history.popitem(last=False)
            self._history.pop(str(item[1]), None)
            self._history[str(item[1])] = entry
            self._changed()
        self._notify()
        return True

    def wipe(self) -> None:
        with self._cond:
            self._heap = []
            self._changed()
        self._notify()

    def delete(self, prompt_id: str) -> bool:
        """Remove the first pending item with this id. Like the real server, removing the
        last pending item goes through :meth:`wipe`, so it broadcasts ``status`` twice."""
        with self._cond:
            for index, entry in enumerate(self._heap):
                if entry[1] == prompt_id:
                    if len(self._heap) == 1:
                        self.wipe()
                    else:
                        self._heap.pop(index)
                        heapq.heapify(self._heap)
                    self._changed()
                    break
            else:
                return False
        self._notify()
        return True

    def remaining(self) -> int:
        with self._cond:
            return len(self._heap) + len(self._running)

    def snapshot(self) -> Tuple[List[QueueItem], List[QueueItem]]:
        """``(running, pending)``: deep copies; pending in heap (not sorted) order."""
        with self._cond:
            running = [copy.deepcopy(item) for item in self._running.values()]
            pending = [copy.deepcopy(entry[3]) for entry in self._heap]
        return running, pending

    def running_prompt_id(self) -> Optional[str]:
        with self._cond:
            for item in self._running.values():
                return str(item[1])
        return None

    def is_idle(self) -> bool:
        with self._cond:
            return not self._heap and not self._running

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = paused
            self._cond.notify_all()
        self._notify()

    def reset(self) -> None:
        """Server restart: forget pending and running items (history is kept)."""
        with self._cond:
            self._heap = []
            self._running = {}
            self.generation += 1
            self._cond.notify_all()
        self._notify()

    def set_flag(self, name: str, value: Any) -> None:
        """``POST /free`` flags, consumed by the worker when idle or after its prompt."""
        with self._cond:
            self._flags[name] = value
            self._cond.notify_all()

    def take_flags(self) -> Dict[str, Any]:
        with self._cond:
            flags, self._flags = self._flags, {}
        return flags

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --------------------------------------------------------------- history side
    def history(
        self, prompt_id: Optional[str] = None, max_items: Optional[int] = None, offset: int = -1
    ) -> Dict[str, Any]:
        """``GET /history`` semantics, including its edge cases."""
        with self._cond:
            if prompt_id is not None:
                if prompt_id in self._history:
                    return {prompt_id: copy.deepcopy(self._history[prompt_id])}
                return {}
            if offset < 0 and max_items is not None:
                offset = len(self._history) - max_items
            out: Dict[str, Any] = {}
            for index, (key, entry) in enumerate(self._history.items()):
                if index >= offset:
                    out[key] = copy.deepcopy(entry)
                    if max_items is not None and len(out) >= max_items:
                        break
            return out

    def history_items(self) -> List[Tuple[str, Dict[str, Any]]]:
        with self._cond:
            return [(k, copy.deepcopy(v)) for k, v in self._history.items()]

    def delete_history(self, prompt_id: str) -> None:
        with self._cond:
            self._history.pop(prompt_id, None)

    def wipe_history(self) -> None:
        with self._cond:
            self._history.clear()
