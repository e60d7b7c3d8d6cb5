"""Finding a prompt by its id on the servers of a :class:`~comfysync.ComfyPool`.

Used by ``pool.attach(prompt_id)`` and by ``pool.submit(..., prompt_id=...)``, which follows a
prompt some server already has instead of running it again (a task delivered twice). Each
server's client is asked (``ComfyApi.attach``); a prompt may be on several servers when the
pool moved it (interrupted where it left, run where it went), so a server where it is
unfinished or succeeded is preferred over one where it ended in an error.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence, Tuple

from ..errors import ComfyError, PromptLostError
from .server import ServerRecord

__all__ = ["find_prompt"]

log = logging.getLogger("comfysync.pool")

#: A server that has the prompt, and the client job following it there.
Found = Tuple[ServerRecord, Any]


def _ended_badly(job: Any) -> bool:
    """Whether a client job has already ended in an error (interrupted, failed)."""
    future = getattr(job, "future", None)
    return future is not None and future.done() and (
        future.cancelled() or future.exception() is not None
    )


def find_prompt(
    prompt_id: str, servers: Sequence[ServerRecord]
) -> Tuple[Optional[Found], List[str]]:
    """A server of ``servers`` that has the prompt, with the client job following it — the
    first where it is unfinished or succeeded; else (it ended in an error everywhere) the
    first that has it — and the servers that could not be asked (``"url (why)"``)."""
    fallback: Optional[Found] = None
    unreachable: List[str] = []
    for server in servers:
        api = server.client_if_usable()
        if api is None:
            unreachable.append(f"{server.url} (down)")
            continue
        try:
            job = api.attach(prompt_id)
        except PromptLostError:
            continue  # not there
        except ComfyError as exc:
            log.info("%s: cannot look for prompt %s: %s", server.url, prompt_id, exc)
            unreachable.append(f"{server.url} ({exc})")
            continue
        if not _ended_badly(job):
            return (server, job), unreachable
        if fallback is None:
            fallback = (server, job)
    return fallback, unreachable
