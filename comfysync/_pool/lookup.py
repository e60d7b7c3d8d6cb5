"""Finding a prompt by its id on the servers of a :class:`~comfysync.ComfyPool`.

Used by ``pool.attach(prompt_id)`` and by ``pool.submit(..., prompt_id=...)``, which follows a
prompt some server already has instead of running it again (a task delivered twice). All
servers are asked at once, each on its own short-lived thread (joined before the answer is
returned), so a lookup costs one server's answer time, not the sum of them.

Each server's client is asked with ``ComfyApi.attach``: ``careful`` lookups (``pool.attach``)
keep its rule that "absent" takes two answers about a second apart — a server may still be
validating a prompt posted a moment ago — while ``pool.submit(prompt_id=...)`` trusts one
answer per server, like ``ComfyApi.submit(prompt_id=...)``: a caller that may have posted the
prompt moments ago (a redelivered task) looks carefully first, with ``pool.attach``.

A prompt may be on several servers when the pool moved it (interrupted where it left, run
where it went), so a server where it is unfinished or succeeded is preferred over one where
it ended in an error; among equals the pool's order decides.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, List, Optional, Sequence, Tuple

from ..errors import ComfyError, PromptLostError
from .server import ServerRecord

__all__ = ["LOOKUP_TIMEOUT", "find_prompt"]

log = logging.getLogger("comfysync.pool")

#: A server that has the prompt, and the client job following it there.
Found = Tuple[ServerRecord, Any]

#: Longest wait for the servers' answers (a careful answer takes about 1 s, a request at most
#: the client's own timeout; a server still silent then counts as one that could not be asked).
LOOKUP_TIMEOUT = 30.0


def _ended_badly(job: Any) -> bool:
    """Whether a client job has already ended in an error (interrupted, failed)."""
    future = getattr(job, "future", None)
    return future is not None and future.done() and (
        future.cancelled() or future.exception() is not None
    )


class _Answer:
    """What one server said: its job of the prompt, or why it could not be asked."""

    def __init__(self) -> None:
        self.job: Any = None
        self.problem: Optional[str] = None


def _ask(server: ServerRecord, prompt_id: str, careful: bool, answer: _Answer) -> None:
    api = server.client_if_usable()
    if api is None:
        answer.problem = "down"
        return
    try:
        answer.job = api.attach(prompt_id, settle=careful)
    except PromptLostError:
        pass  # not there
    except ComfyError as exc:
        log.info("%s: cannot look for prompt %s: %s", server.url, prompt_id, exc)
        answer.problem = str(exc)
    except Exception as exc:  # a thread must report, not die: the lookup counts it unasked
        log.warning("%s: looking for prompt %s failed: %r", server.url, prompt_id, exc)
        answer.problem = repr(exc)


def find_prompt(
    prompt_id: str,
    servers: Sequence[ServerRecord],
    *,
    careful: bool = True,
    timeout: float = LOOKUP_TIMEOUT,
) -> Tuple[Optional[Found], List[str]]:
    """A server of ``servers`` that has the prompt, with the client job following it — the
    first where it is unfinished or succeeded; else (it ended in an error everywhere) the
    first that has it — and the servers that could not be asked (``"url (why)"``). All are
    asked in parallel; ``careful``: see the module's docstring."""
    answers = [_Answer() for _ in servers]
    threads = [
        threading.Thread(target=_ask, args=(server, prompt_id, careful, answer),
                         name=f"comfysync-lookup-{server.url}", daemon=True)
        for server, answer in zip(servers, answers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for server, answer, thread in zip(servers, answers, threads):
        if thread.is_alive():
            # its client's own request timeout ends it soon; its answer is no longer awaited
            answer.problem = answer.problem or f"no answer within {timeout} s"
            log.warning("%s: no answer about prompt %s within %s s", server.url, prompt_id,
                        timeout)
    fallback: Optional[Found] = None
    unreachable: List[str] = []
    for server, answer in zip(servers, answers):
        if answer.problem is not None:
            unreachable.append(f"{server.url} ({answer.problem})")
            continue
        if answer.job is None:
            continue
        if not _ended_badly(answer.job):
            return (server, answer.job), unreachable
        if fallback is None:
            fallback = (server, answer.job)
    return fallback, unreachable
