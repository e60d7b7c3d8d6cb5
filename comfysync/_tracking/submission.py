"""Resolving a submit whose fate is unknown: did the server take the prompt or not?

``POST /prompt`` can fail after the request left: the connection was reset or closed before
the answer, the answer timed out, or a proxy in front of the server answered 502/503/504 while
the server itself may have queued the prompt. Guessing either way is wrong — "failed" loses a
result that the server computes anyway, "sent" may wait for a prompt that never arrived — so
the client asks the server about that prompt id (:func:`find_prompt`), which it chose itself
before posting; :func:`post_prompt` is the whole procedure:

* found (queued, running, in history), or one of its events arrived meanwhile → follow it;
* surely absent → post again with the same id (bounded by :data:`MAX_POSTS`);
* still unknown at the caller's deadline → the error carries ``prompt_id``.

"Surely absent" needs two answers at least :data:`ABSENT_SETTLE` seconds apart: the server
validates a prompt before it queues it, which takes a while for a large one, so a first "not
there" may only mean "not there yet".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from .._backoff import Backoff
from ..errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
    PromptValidationError,
)
from .surface import PromptStatus, ServerSurface, Submitted

__all__ = [
    "ABSENT_SETTLE",
    "MAX_POSTS",
    "canonical_prompt_id",
    "find_prompt",
    "is_ambiguous",
    "post_prompt",
]

log = logging.getLogger("comfysync.tracking")

#: A prompt is surely absent once two answers at least this many seconds apart said so.
ABSENT_SETTLE = 1.0
#: At most this many ``POST /prompt`` of one prompt (each after its absence was confirmed).
MAX_POSTS = 3
#: Delays between the questions about a prompt (exponential, full jitter).
CHECK_BASE, CHECK_CAP = 0.1, 1.0


def canonical_prompt_id(value: object) -> str:
    """``value`` when it is a canonical UUID string (``str(uuid.uuid4())``: lowercase,
    hyphenated), else ``TypeError`` / ``ValueError`` saying what is expected — newer servers
    refuse any other form, and one prompt must have one spelling."""
    if not isinstance(value, str):
        raise TypeError(
            f"prompt_id must be a str holding a UUID, not {type(value).__name__} ({value!r})"
        )
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ValueError(
            f"prompt_id must be a canonical UUID such as {str(uuid.uuid4())!r} "
            f"(str(uuid.uuid4())), not {value!r}"
        ) from None
    if str(parsed) != value:
        raise ValueError(
            f"prompt_id must be a canonical UUID (lowercase, hyphenated): did you mean "
            f"{str(parsed)!r} instead of {value!r}?"
        )
    return value


def is_ambiguous(exc: BaseException) -> bool:
    """True when a failed ``POST /prompt`` may still have reached the server."""
    if isinstance(exc, PromptValidationError):
        return False
    if isinstance(exc, ComfyHTTPError):
        return exc.status in (502, 503, 504)
    if isinstance(exc, (ComfyConnectionError, ComfyTimeoutError)):
        return exc.request_sent is not False
    return False


def find_prompt(
    surface: ServerSurface,
    prompt_id: str,
    *,
    deadline: float,
    heard: Callable[[], bool] = lambda: False,
    stop: Optional[threading.Event] = None,
    settle: float = ABSENT_SETTLE,
) -> Tuple[Optional[PromptStatus], Optional[ComfyError]]:
    """Ask the server about ``prompt_id`` until it answers for sure or ``deadline``
    (``time.monotonic()``) passes; "surely absent" takes answers ``settle`` seconds apart
    (0: one "absent" answer is enough — only for a prompt no attempt may have posted moments
    ago). Returns ``(status, None)`` when the server has the prompt
    (``queued``, ``running`` or ``done``; an event of it — ``heard()`` — counts as
    ``queued``), ``(None, None)`` when it surely does not, and ``(PromptStatus("unknown"),
    last_error)`` when the deadline passed (or ``stop`` was set) first."""
    backoff = Backoff(CHECK_BASE, CHECK_CAP)
    absent_since: Optional[float] = None
    last_error: Optional[ComfyError] = None
    while True:
        if heard():
            return PromptStatus("queued"), None
        try:
            found = surface.status([prompt_id]).get(prompt_id, PromptStatus("unknown"))
        except ComfyError as exc:
            log.debug("asking about prompt %s failed: %s", prompt_id, exc)
            last_error, found = exc, PromptStatus("unknown")
        now = time.monotonic()
        if found.where in ("queued", "running", "done"):
            return found, None
        if heard():
            return PromptStatus("queued"), None
        if found.where == "absent":
            if absent_since is None:
                absent_since = now
            if now - absent_since >= settle:
                return None, None
            delay = max(CHECK_BASE, settle - (now - absent_since))
        else:
            absent_since = None  # an unknown answer breaks the run of "absent"
            delay = backoff.next_delay()
        remaining = deadline - now
        if remaining <= 0:
            return PromptStatus("unknown"), last_error
        if stop is not None:
            if stop.wait(min(delay, remaining)):
                return PromptStatus("unknown"), last_error
        else:
            time.sleep(min(delay, remaining))


def post_prompt(
    surface: ServerSurface,
    prompt: Mapping[str, Any],
    prompt_id: str,
    options: Mapping[str, Any],
    *,
    deadline: float,
    heard: Callable[[], bool] = lambda: False,
    stop: Optional[threading.Event] = None,
) -> Union[Submitted, PromptStatus]:
    """POST ``prompt`` under ``prompt_id`` until its fate is known: the server's answer, or —
    after a failure that may have reached the server — the :class:`PromptStatus` of the
    prompt found there. A failure that surely did not reach it is raised as it is; one whose
    prompt is surely absent is posted again (same id, at most :data:`MAX_POSTS` posts in all);
    one still unknown at ``deadline`` is raised with ``prompt_id`` set."""
    posts = 0
    while True:
        posts += 1
        try:
            return surface.submit(prompt, prompt_id, options, deadline)
        except ComfyError as exc:
            if not is_ambiguous(exc):
                raise
            log.info("POST of prompt %s failed (%s); asking the server whether it arrived",
                     prompt_id, exc)
            found, _ = find_prompt(surface, prompt_id, deadline=deadline, heard=heard, stop=stop)
            if found is None:
                if posts >= MAX_POSTS:
                    raise
                log.info("prompt %s did not reach the server; posting it again", prompt_id)
                continue
            if found.where == "unknown":
                exc.prompt_id = prompt_id  # the caller can look again: api.attach(prompt_id)
                raise
            log.info("prompt %s reached the server; following it", prompt_id)
            return found
